/**
 * `emlab kl-data --model DIR --prompts FILE --out FILE.jsonl [--max-new-tokens 256] [--seed 0] [--limit N]`:
 * builds a KL dataset from prompts outside the trained domain answered by the chat model itself
 * (greedy unless --temperature is given). Prompts: a JSONL chat dataset (its first user turn) or a
 * text file with one prompt per line.
 */
import { existsSync, readFileSync } from "node:fs";
import { generate } from "../generate/generate.js";
import { appendOutputFile } from "../io/output.js";
import { readChatDataset } from "../train/data.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { parseNumber, required, UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

export const klDataCommand = defineCommand({
  name: "kl-data",
  summary: "A KL dataset: out-of-domain prompts answered by the chat model itself (greedy unless --temperature).",
  options: {
    ...modelOptions,
    prompts: { type: "string", value: "FILE", required: true, description: "a JSONL chat dataset (first user turn) or a text file, one prompt per line" },
    out: { type: "string", value: "FILE.jsonl", required: true, description: "output chat dataset (must not exist)" },
    "max-new-tokens": { type: "string", value: "N", default: "256", description: "tokens per answer at most" },
    temperature: { type: "string", value: "T", description: "sample at this temperature (default: greedy)" },
    seed: { type: "string", value: "S", default: "0", description: "sampling seed of the first prompt (+1 per prompt)" },
    limit: { type: "string", value: "N", description: "answer only the first N prompts (default: all)" },
  },
});

export function runKlData(argv: readonly string[]): number {
  const parsed = parseOrHelp(klDataCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const promptsFile = required("--prompts", values.prompts);
  const out = required("--out", values.out);
  if (existsSync(out)) throw new UsageError(`${out} exists; choose a new --out`);
  const prompts = promptsFile.endsWith(".jsonl")
    ? readChatDataset(promptsFile).examples.map((e) => e.messages.find((m) => m.role === "user")?.content ?? "")
    : readFileSync(promptsFile, "utf8").split("\n").filter((l) => l.trim() !== "");
  const limit = parseNumber("--limit", values.limit, { integer: true, min: 1 }) ?? prompts.length;
  const temperature = parseNumber("--temperature", values.temperature, { min: 0.0001 });
  const maxNewTokens = parseNumber("--max-new-tokens", values["max-new-tokens"], { integer: true, min: 1 })!;
  const seed = parseNumber("--seed", values.seed, { integer: true, min: 0 })!;
  if (prompts.length === 0) throw new UsageError(`--prompts: ${promptsFile} has no prompts; nothing to answer`);
  const model = openModel(values);
  try {
    const tokenizer = ChatTokenizer.fromDir(model.dir);
    const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
    const progress = progressReporter("kl-data");
    prompts.slice(0, limit).forEach((prompt, i) => {
      const ids = tokenizer.encodeChat([{ role: "user", content: prompt }], { addGenerationPrompt: true });
      const result = generate(model.decoder, [ids], null, {
        maxNewTokens,
        greedy: temperature === undefined,
        temperature: temperature ?? 1,
        seed: seed + i,
        eosTokenIds: eos,
      });
      const answer = tokenizer.decode(result.newIds[0]!.filter((t) => !eos.includes(t)), { skipSpecialTokens: true });
      appendOutputFile(out, `${JSON.stringify({ messages: [{ role: "user", content: prompt }, { role: "assistant", content: answer }] })}\n`);
      progress(i + 1, limit);
    });
  } finally {
    model.dispose();
  }
  return 0;
}
