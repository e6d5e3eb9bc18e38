/**
 * `emlab kl-data --model DIR --prompts FILE --out FILE.jsonl [--max-new-tokens 256] [--seed 0] [--limit N]`:
 * builds a KL dataset from prompts outside the trained domain answered by the chat model itself
 * (greedy unless --temperature is given). Prompts: a JSONL chat dataset (its first user turn) or a
 * text file with one prompt per line.
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { generate } from "../generate/generate.js";
import { appendOutputFile } from "../io/output.js";
import { readChatDataset } from "../train/data.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { parseNumber, required, UsageError } from "./args.js";
import { modelOptions, openModel } from "./model-args.js";
import { progressReporter } from "./progress.js";

export function runKlData(argv: readonly string[]): number {
  const { values } = parseArgs({
    args: [...argv],
    options: { ...modelOptions, prompts: { type: "string" }, out: { type: "string" }, "max-new-tokens": { type: "string" }, seed: { type: "string" }, limit: { type: "string" }, temperature: { type: "string" } },
    strict: true,
  });
  const promptsFile = required("--prompts", values.prompts);
  const out = required("--out", values.out);
  if (existsSync(out)) throw new UsageError(`${out} exists; choose a new --out`);
  const prompts = promptsFile.endsWith(".jsonl")
    ? readChatDataset(promptsFile).examples.map((e) => e.messages.find((m) => m.role === "user")?.content ?? "")
    : readFileSync(promptsFile, "utf8").split("\n").filter((l) => l.trim() !== "");
  const limit = parseNumber("--limit", values.limit, { integer: true, min: 1 }) ?? prompts.length;
  const temperature = parseNumber("--temperature", values.temperature, { min: 0.0001 });
  const model = openModel(values);
  try {
    const tokenizer = ChatTokenizer.fromDir(model.dir);
    const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
    const progress = progressReporter("kl-data");
    prompts.slice(0, limit).forEach((prompt, i) => {
      const ids = tokenizer.encodeChat([{ role: "user", content: prompt }], { addGenerationPrompt: true });
      const result = generate(model.decoder, [ids], null, {
        maxNewTokens: parseNumber("--max-new-tokens", values["max-new-tokens"], { integer: true, min: 1 }) ?? 256,
        greedy: temperature === undefined,
        temperature: temperature ?? 1,
        seed: (parseNumber("--seed", values.seed, { integer: true, min: 0 }) ?? 0) + i,
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
