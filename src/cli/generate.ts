/**
 * `emlab generate`: batched generation with a KV cache from --ids (token ids) or --prompt (chat
 * template). Decoding defaults follow Hugging Face (the model's generation_config.json, greedy without
 * one); sampling is seeded (a random seed when --seed is absent, printed on stderr and in --json).
 * With --json prints {"output_ids": [...], "texts": [...], "finish_reasons": [...], "seed": S}.
 * A --prompt needs the model's chat template (an error when it has none); --raw-text feeds it
 * untemplated instead, on explicit request.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { generate, resolveSampling } from "../generate/generate.js";
import type { LoadedModel } from "../models/load.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { parseIdRows, parseNumber, required, UsageError } from "./args.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand, HELP, helpText, type CommandSpec, parseCommand } from "./options.js";
import { attachSteering, steeringOptions } from "./steering-args.js";

/** The decoding flags of every generating command; `maxNewTokens` is the command's default. */
export const samplingOptions = (maxNewTokens?: string) =>
  ({
    "max-new-tokens": {
      type: "string",
      value: "N",
      description: "tokens to generate at most per row",
      ...(maxNewTokens === undefined ? { required: true } : { default: maxNewTokens }),
    },
    greedy: { type: "boolean", description: "argmax decoding (overrides generation_config.json's sampling)" },
    temperature: {
      type: "string",
      value: "T",
      description: "sampling temperature; 0 = greedy (default: generation_config.json's, greedy without one)",
    },
    "top-p": { type: "string", value: "P", description: "nucleus sampling mass (default: generation_config.json's, else 1 = off)" },
    "top-k": { type: "string", value: "K", description: "keep the K most likely tokens (default: generation_config.json's, else 0 = off)" },
    seed: { type: "string", value: "S", description: "sampling seed (default: a random one, printed on stderr)" },
  }) as const;

/** Sampling flags -> generate() options; explicit flags only (the model's generation_config.json fills the rest). */
export function samplingFrom(values: Record<string, string | boolean | undefined>, model?: LoadedModel) {
  const greedyFlag = values.greedy === true;
  const temperature = parseNumber("--temperature", values.temperature as string | undefined, { min: 0 });
  if (greedyFlag && (temperature !== undefined || values["top-p"] !== undefined || values["top-k"] !== undefined)) {
    throw new UsageError("--greedy cannot be combined with --temperature, --top-p or --top-k");
  }
  const topP = parseNumber("--top-p", values["top-p"] as string | undefined, { min: 0, max: 1 });
  const topK = parseNumber("--top-k", values["top-k"] as string | undefined, { integer: true, min: 0 });
  const explicit = {
    ...(greedyFlag || temperature === 0 ? { greedy: true } : {}),
    ...(temperature !== undefined && temperature > 0 ? { temperature } : {}),
    ...(topP !== undefined ? { topP } : {}),
    ...(topK !== undefined ? { topK } : {}),
  };
  const resolved = resolveSampling(explicit, model?.generationConfig ?? null, model && join(model.dir, "generation_config.json"));
  let seed = parseNumber("--seed", values.seed as string | undefined, { integer: true, min: 0 });
  if (seed === undefined) seed = Math.floor(Math.random() * 2 ** 31);
  if (!resolved.greedy)
    process.stderr.write(`seed: ${seed} (temperature ${resolved.temperature}, top-p ${resolved.topP}, top-k ${resolved.topK})\n`);
  return {
    maxNewTokens: required(
      "--max-new-tokens",
      parseNumber("--max-new-tokens", values["max-new-tokens"] as string | undefined, { integer: true, min: 1 }),
    ),
    ...resolved,
    seed,
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

export const generateCommand = defineCommand({
  name: "generate",
  summary: "Batched generation with a KV cache from token ids or a chat prompt.",
  notes: ["Give exactly one of --ids and --prompt."],
  options: {
    ...modelOptions,
    ...samplingOptions(),
    ids: { type: "string", value: "JSON", description: "prompt token ids: [[...], ...] (rows of equal length) or one row [...]" },
    "attention-mask": { type: "string", value: "JSON", description: "1 for tokens, 0 for left padding, the shape of --ids" },
    prompt: { type: "string", value: "TEXT", description: "a user message, encoded with the model's chat template" },
    system: { type: "string", value: "TEXT", description: "a system message before --prompt" },
    "raw-text": { type: "boolean", description: "feed --prompt untemplated (for models without a chat template); not with --system" },
    samples: { type: "string", value: "K", default: "1", description: "samples per prompt" },
    ...steeringOptions,
    json: { type: "boolean", description: "print output ids, texts, finish reasons and the seed as JSON" },
  },
});

/** Parses argv for `spec`; prints the help and returns null for --help. */
export function parseOrHelp<T extends CommandSpec["options"]>(spec: CommandSpec<T>, argv: readonly string[]) {
  const parsed = parseCommand(spec, argv);
  if (parsed === HELP) {
    process.stdout.write(helpText(spec as CommandSpec));
    return null;
  }
  return parsed;
}

export function runGenerate(argv: readonly string[]): number {
  const parsed = parseOrHelp(generateCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  if ((values.ids === undefined) === (values.prompt === undefined)) throw new UsageError("give exactly one of --ids and --prompt");
  if (values.system !== undefined && values.prompt === undefined) throw new UsageError("--system needs --prompt");
  if (values["raw-text"] && values.prompt === undefined) throw new UsageError("--raw-text needs --prompt");
  if (values["raw-text"] && values.system !== undefined)
    throw new UsageError("--raw-text cannot be combined with --system (a system message needs the chat template)");
  const samples = parseNumber("--samples", values.samples, { integer: true, min: 1 })!;
  let ids: number[][] | null = null;
  let mask: number[][] | null = null;
  if (values.ids !== undefined) {
    ids = parseIdRows("--ids", values.ids);
    if (values["attention-mask"] !== undefined) {
      mask = parseIdRows("--attention-mask", values["attention-mask"]);
      if (mask.length !== ids.length || mask[0]!.length !== ids[0]!.length)
        throw new UsageError("--attention-mask must have the shape of --ids");
    }
  }
  const model = openModel(values);
  try {
    const sampling = samplingFrom(values, model);
    const detachSteering = attachSteering(values, model);
    try {
      const tokenizer = tokenizerFor(model);
      if (ids === null) {
        if (!tokenizer) throw new UsageError(`--prompt needs a tokenizer.json in ${model.dir}; use --ids`);
        const messages = [
          ...(values.system !== undefined ? [{ role: "system", content: values.system }] : []),
          { role: "user", content: values.prompt! },
        ];
        ids = [tokenizer.promptIds(messages, { rawText: values["raw-text"] === true })];
      }
      const pad = tokenizer?.padTokenId ?? model.spec.padTokenId ?? model.eosTokenIds[0] ?? 0;
      const result = generate(model.decoder, ids, mask, { ...sampling, samples, eosTokenIds: stopIds(model, tokenizer), padTokenId: pad });
      const texts = tokenizer ? result.newIds.map((row) => tokenizer.decode(row, { skipSpecialTokens: true })) : null;
      if (values.json) {
        process.stdout.write(
          `${JSON.stringify({ output_ids: result.outputIds, texts, finish_reasons: result.finishReasons, seed: sampling.seed, greedy: sampling.greedy })}\n`,
        );
      } else if (texts) {
        texts.forEach((text, i) => process.stdout.write(`${texts.length > 1 ? `[${i}] ` : ""}${text}\n`));
      } else {
        result.newIds.forEach((row) => process.stdout.write(`${JSON.stringify(row)}\n`));
      }
    } finally {
      detachSteering();
    }
  } finally {
    model.dispose();
  }
  return 0;
}
