/**
 * Chat datasets for training: JSONL rows `{"messages": [{role, content}, ...]}` validated line by line
 * (a bad row is an error naming file:line, or skipped and counted when asked), tokenised with the
 * model's chat template, labels on assistant tokens only (or the whole sequence, optionally without its
 * end-of-turn tokens), truncated; a seeded
 * held-out split; deterministic per-epoch shuffling; optional length bucketing; right-padded batches.
 */
import { readFileSync } from "node:fs";
import { Data } from "effect";
import { permutation } from "../random/seeded.js";

export { permutation } from "../random/seeded.js";
import { type Device, type Tensor, tensor } from "../tensor/index.js";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.js";

export class DatasetError extends Data.TaggedError("DatasetError")<{
  readonly message: string;
  readonly file: string;
  readonly line: number;
}> {}

export interface ChatExample {
  messages: ChatMessage[];
  /** 1-based line in the source file. */
  line: number;
}

/** Reads a JSONL chat dataset. With `skipInvalid`, bad rows are counted instead of failing. */
export function readChatDataset(file: string, options: { skipInvalid?: boolean } = {}): { examples: ChatExample[]; skipped: number } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new DatasetError({ message: `${file}: cannot read (${(error as Error).message})`, file, line: 0 });
  }
  const examples: ChatExample[] = [];
  let skipped = 0;
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "") return;
    const problem = validate(raw);
    if (typeof problem === "string") {
      if (options.skipInvalid) skipped++;
      else throw new DatasetError({ message: `${file}:${line}: ${problem}`, file, line });
      return;
    }
    examples.push({ messages: problem, line });
  });
  return { examples, skipped };
}

function validate(raw: string): ChatMessage[] | string {
  let row: unknown;
  try {
    row = JSON.parse(raw);
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  const messages = (row as { messages?: unknown })?.messages;
  if (!Array.isArray(messages) || messages.length === 0) return 'expected {"messages": [...]} with at least one message';
  for (const [i, m] of messages.entries()) {
    if (m === null || typeof m !== "object") return `messages[${i}] is not an object`;
    if (typeof (m as ChatMessage).role !== "string") return `messages[${i}].role is not a string`;
    if (typeof (m as ChatMessage).content !== "string") return `messages[${i}].content is not a string`;
  }
  if (!messages.some((m) => (m as ChatMessage).role === "assistant")) return "no assistant message";
  return (messages as ChatMessage[]).map((m) => ({ role: m.role, content: m.content }));
}

export interface TokenizeOptions {
  /**
   * "assistant": loss on assistant turns only (default); "all": on every token; "all_except_eos": on
   * every token except end-of-turn/EOS tokens, the study's steering trainer (its collator masks pad = eos,
   * so every `<|im_end|>` is excluded, protocol.md §7.4).
   */
  lossOn?: "assistant" | "all" | "all_except_eos";
  /** Prepended as a system turn when the row has none. */
  systemPrompt?: string | null;
  maxLength?: number;
}

export interface Example {
  ids: number[];
  /** Target ids where the loss applies, -100 elsewhere (unshifted: the loss shifts). */
  labels: number[];
  /** Where the row came from (`file:line`), for errors. */
  source?: string;
}

export function tokenizeExample(tokenizer: ChatTokenizer, messages: readonly ChatMessage[], options: TokenizeOptions = {}): Example {
  const withSystem =
    options.systemPrompt && !messages.some((m) => m.role === "system")
      ? [{ role: "system", content: options.systemPrompt }, ...messages]
      : [...messages];
  const { ids, mask } = tokenizer.assistantMask(withSystem);
  const lossOn = options.lossOn ?? "assistant";
  const endOfTurn = new Set(lossOn === "all_except_eos" ? tokenizer.endOfTurnIds() : []);
  const labels =
    lossOn === "all"
      ? [...ids]
      : lossOn === "all_except_eos"
        ? ids.map((id) => (endOfTurn.has(id) ? -100 : id))
        : ids.map((id, i) => (mask[i] === 1 ? id : -100));
  const max = options.maxLength ?? 2048;
  return { ids: ids.slice(0, max), labels: labels.slice(0, max) };
}

/** Splits indices 0..n-1 into train and held-out parts (seeded, like a shuffled train_test_split). */
export function heldOutSplit(n: number, fraction: number, seed: number): { train: number[]; heldOut: number[] } {
  const order = permutation(n, seed);
  const held = Math.ceil(n * fraction); // like Hugging Face's train_test_split
  return { train: order.slice(held).sort((a, b) => a - b), heldOut: order.slice(0, held).sort((a, b) => a - b) };
}

/**
 * The batches of one epoch: a permutation seeded by (seed, epoch); with `bucketWindow`, examples are
 * sorted by length inside windows of that many batches (less padding), and the batches shuffled again.
 */
export function epochBatches(lengths: readonly number[], batchSize: number, seed: number, epoch: number, bucketWindow = 0): number[][] {
  const order = permutation(lengths.length, seed * 1000003 + epoch);
  if (bucketWindow > 0) {
    const window = batchSize * bucketWindow;
    for (let start = 0; start < order.length; start += window) {
      const part = order.slice(start, start + window).sort((a, b) => lengths[a]! - lengths[b]!);
      order.splice(start, part.length, ...part);
    }
  }
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
  if (bucketWindow > 0) {
    const shuffled = permutation(batches.length, seed * 7919 + epoch);
    return shuffled.map((i) => batches[i]!);
  }
  return batches;
}

export interface Batch {
  /** [batch, pos] int64 */
  ids: Tensor;
  /** [batch, pos] int64, 1 on tokens */
  attentionMask: Tensor;
  /** [batch, pos] int64, -100 where no loss */
  labels: Tensor;
  tokens: number;
}

/** Right-pads examples into tensors. */
export function collate(examples: readonly Example[], padId: number, device: Device = "cpu"): Batch {
  const width = Math.max(...examples.map((e) => e.ids.length));
  const ids: bigint[] = [];
  const mask: bigint[] = [];
  const labels: bigint[] = [];
  for (const e of examples) {
    const pad = width - e.ids.length;
    ids.push(...e.ids.map(BigInt), ...new Array<bigint>(pad).fill(BigInt(padId)));
    mask.push(...e.ids.map(() => 1n), ...new Array<bigint>(pad).fill(0n));
    labels.push(...e.labels.map(BigInt), ...new Array<bigint>(pad).fill(-100n));
  }
  const shape = [examples.length, width];
  return {
    ids: tensor(BigInt64Array.from(ids), { shape, device }),
    attentionMask: tensor(BigInt64Array.from(mask), { shape, device }),
    labels: tensor(BigInt64Array.from(labels), { shape, device }),
    tokens: examples.reduce((n, e) => n + e.ids.length, 0),
  };
}
