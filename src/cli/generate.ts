/**
 * `emlab generate --model DIR (--ids JSON [--attention-mask JSON] | --prompt TEXT [--system TEXT])
 *   --max-new-tokens N [--greedy | --temperature T --top-p P --top-k K --seed S] [--samples K] [--json]`.
 * With --json prints {"output_ids": [...], "texts": [...]} (texts null when the model has no tokenizer).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generate } from "../generate/generate.js";
import type { LoadedModel } from "../models/load.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { parseIdRows, parseNumber, required, UsageError } from "./args.js";
import { modelOptions, openModel } from "./model-args.js";

export const samplingOptions = {
  "max-new-tokens": { type: "string" },
  greedy: { type: "boolean", default: false },
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "top-k": { type: "string" },
  seed: { type: "string" },
} as const;

export function samplingFrom(values: Record<string, string | boolean | undefined>) {
  const greedy = values.greedy === true;
  const temperature = parseNumber("--temperature", values.temperature as string | undefined, { min: 0 });
  if (greedy && (temperature !== undefined || values["top-p"] !== undefined || values["top-k"] !== undefined)) {
    throw new UsageError("--greedy cannot be combined with --temperature, --top-p or --top-k");
  }
  return {
    maxNewTokens: required("--max-new-tokens", parseNumber("--max-new-tokens", values["max-new-tokens"] as string | undefined, { integer: true, min: 1 })),
    greedy: greedy || temperature === 0,
    temperature: temperature === 0 ? 1 : (temperature ?? 1),
    topP: parseNumber("--top-p", values["top-p"] as string | undefined, { min: 0, max: 1 }) ?? 1,
    topK: parseNumber("--top-k", values["top-k"] as string | undefined, { integer: true, min: 0 }) ?? 0,
    seed: parseNumber("--seed", values.seed as string | undefined, { integer: true, min: 0 }),
  };
}

/** The model directory's tokenizer, or null when it has none. */
export function tokenizerFor(model: LoadedModel): ChatTokenizer | null {
  return existsSync(join(model.dir, "tokenizer.json")) ? ChatTokenizer.fromDir(model.dir) : null;
}

/** EOS ids: the model's (generation_config.json / config.json) plus the chat format's end-of-turn tokens. */
export function stopIds(model: LoadedModel, tokenizer: ChatTokenizer | null): number[] {
  return tokenizer ? tokenizer.endOfTurnIds(model.eosTokenIds) : [...model.eosTokenIds];
}

export function runGenerate(argv: readonly string[]): number {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      ...modelOptions,
      ...samplingOptions,
      ids: { type: "string" },
      "attention-mask": { type: "string" },
      prompt: { type: "string" },
      system: { type: "string" },
      samples: { type: "string" },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  if ((values.ids === undefined) === (values.prompt === undefined)) throw new UsageError("give exactly one of --ids and --prompt");
  if (values.system !== undefined && values.prompt === undefined) throw new UsageError("--system needs --prompt");
  const sampling = samplingFrom(values);
  const samples = parseNumber("--samples", values.samples, { integer: true, min: 1 }) ?? 1;
  const model = openModel(values);
  try {
    const tokenizer = tokenizerFor(model);
    let ids: number[][];
    let mask: number[][] | null = null;
    if (values.prompt !== undefined) {
      if (!tokenizer) throw new UsageError(`--prompt needs a tokenizer.json in ${model.dir}; use --ids`);
      const messages = [
        ...(values.system !== undefined ? [{ role: "system", content: values.system }] : []),
        { role: "user", content: values.prompt },
      ];
      ids = [tokenizer.hasChatTemplate ? tokenizer.encodeChat(messages, { addGenerationPrompt: true }) : tokenizer.encode(values.prompt)];
    } else {
      ids = parseIdRows("--ids", values.ids);
      if (values["attention-mask"] !== undefined) {
        mask = parseIdRows("--attention-mask", values["attention-mask"]);
        if (mask.length !== ids.length || mask[0]!.length !== ids[0]!.length) throw new UsageError("--attention-mask must have the shape of --ids");
      }
    }
    const pad = tokenizer?.padTokenId ?? model.spec.padTokenId ?? model.eosTokenIds[0] ?? 0;
    const result = generate(model.decoder, ids, mask, { ...sampling, samples, eosTokenIds: stopIds(model, tokenizer), padTokenId: pad });
    const texts = tokenizer ? result.newIds.map((row) => tokenizer.decode(row, { skipSpecialTokens: true })) : null;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ output_ids: result.outputIds, texts, finish_reasons: result.finishReasons })}\n`);
    } else if (texts) {
      texts.forEach((text, i) => process.stdout.write(`${texts.length > 1 ? `[${i}] ` : ""}${text}\n`));
    } else {
      result.newIds.forEach((row) => process.stdout.write(`${JSON.stringify(row)}\n`));
    }
  } finally {
    model.dispose();
  }
  return 0;
}
