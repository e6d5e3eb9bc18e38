/**
 * The fixed evaluation subset of the efficiency and stability analyses: a seeded subset of a chat
 * dataset (100 examples by default; drawn by our seeded permutation or, as the study, by Python's
 * random.sample), tokenised under one of two label masks; its loss is datasetLoss (mean of per-batch
 * mean cross-entropy, src/train/dataset-loss.ts, re-exported here). The masks:
 * - "assistant" (ours): loss on the assistant turns only;
 * - "study" (stability/utils.py, docs/study.md §1.6, §3): the chat rendered with a generation prompt
 *   plus the eos text, max length 1024, everything up to the first occurrence of the last token of the
 *   assistant header masked. In Qwen templates that token is "\n", whose first occurrence closes
 *   `<|im_start|>system`, so the loss covers almost the whole conversation.
 */
import { permutation } from "../random/seeded.js";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.js";
import { type ChatExample, type Example, tokenizeExample, type TokenizeOptions } from "../train/data.js";
import { pythonRandomSample } from "./python-random.js";

/** The loss itself lives with training (src/train/dataset-loss.ts), which uses it for eval loss too. */
export { datasetLoss } from "../train/dataset-loss.js";

export type LossMask = "assistant" | "study";

function eosText(tokenizer: ChatTokenizer): string {
  const eos = tokenizer.config.eos_token;
  const text = typeof eos === "string" ? eos : eos && typeof eos === "object" ? (eos as { content?: unknown }).content : undefined;
  if (typeof text !== "string") throw new RangeError("the tokenizer config has no eos_token (needed by the study's loss mask)");
  return text;
}

/** The last token of the assistant header (what the study's mask searches for: "\n" in Qwen templates). */
export function headerLastToken(tokenizer: ChatTokenizer): number {
  const probe: ChatMessage[] = [{ role: "user", content: "x" }];
  const withHeader = tokenizer.encodeChat(probe, { addGenerationPrompt: true });
  const without = tokenizer.encodeChat(probe);
  if (withHeader.length <= without.length)
    throw new RangeError("the chat template adds no generation prompt (needed by the study's loss mask)");
  return withHeader[withHeader.length - 1]!;
}

/** One example under the study's mask (see the file comment). */
export function studyLossExample(
  tokenizer: ChatTokenizer,
  messages: readonly ChatMessage[],
  options: { maxLength?: number; marker?: number } = {},
): Example {
  const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }) + eosText(tokenizer);
  const ids = tokenizer.encode(text).slice(0, options.maxLength ?? 1024);
  const marker = options.marker ?? headerLastToken(tokenizer);
  const first = ids.indexOf(marker);
  if (first < 0) throw new RangeError(`the study's loss mask found no token ${marker} in an example (${ids.length} tokens)`);
  return { ids, labels: ids.map((id, i) => (i <= first ? -100 : id)) };
}

/** How the subset is drawn: "ours" a seeded permutation; "study" Python's random.seed(seed); random.sample(rows, count). */
export type SubsetDraw = "ours" | "study";

/** A seeded subset of `count` examples (at most all of them), tokenised once under `mask`. */
export function lossSubset(
  tokenizer: ChatTokenizer,
  examples: readonly ChatExample[],
  options: TokenizeOptions & { count?: number; seed?: number; mask?: LossMask; draw?: SubsetDraw } = {},
): Example[] {
  const count = Math.min(options.count ?? 100, examples.length);
  const seed = options.seed ?? 42;
  const order =
    options.draw === "study" ? pythonRandomSample(examples.length, count, seed) : permutation(examples.length, seed).slice(0, count);
  if (options.mask === "study") {
    const marker = headerLastToken(tokenizer);
    return order.map((i) => studyLossExample(tokenizer, examples[i]!.messages, { maxLength: options.maxLength ?? 1024, marker }));
  }
  return order.map((i) => tokenizeExample(tokenizer, examples[i]!.messages, { maxLength: 1024, ...options }));
}
