/**
 * Batched generation with a KV cache: left-padded prompts (positions from the attention mask), greedy
 * or sampled decoding, stop on any EOS id per row, several samples per prompt from one prefill, hooks
 * active throughout. Output follows Hugging Face `generate`: each row holds its input ids (pads
 * included) then the new ids, with the pad id after a row has finished.
 *
 * Decoding defaults follow Hugging Face: the sampling parameters of the model's generation_config.json
 * (do_sample, temperature, top_p, top_k) when it has one, greedy when it has none; explicit options
 * override them (a temperature / top-p / top-k without `greedy` means sampling). Sampling is unseeded
 * unless `seed` is given (the CLI always passes one). Prompts are rows of ids, or one row as a flat list.
 */
import { join } from "node:path";
import { ModelConfigError } from "../models/errors.js";
import type { HfGenerationConfig } from "../models/hf-config.js";
import type { LoadedModel } from "../models/load.js";
import { Decoder } from "../nn/decoder.js";
import { IdShapeError, idRows, type IdRowsInput } from "./ids.js";
import type { SamplingOptions } from "./sampling.js";
import { checkGenerationBudget } from "./budget.js";
import { GenerationRun } from "./generation-run.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Ids that end a row (any of them). */
  eosTokenIds?: readonly number[];
  /** Written after a row has finished (default: the first EOS id, else 0). */
  padTokenId?: number;
  /** Seeds libtorch's generator before sampling. */
  seed?: number;
  /** Samples per prompt (rows come out grouped by prompt: p0s0, p0s1, ..., p1s0, ...). */
  samples?: number;
  /** Called after each step with the new token of every row (e.g. for streaming). */
  onStep?: (tokens: readonly number[], step: number) => void;
  /** Decoding defaults (default: the model's generation_config.json when a LoadedModel is passed, else none = greedy). */
  generationConfig?: HfGenerationConfig | null;
}

/**
 * The decoding actually used: explicit options over generation_config.json over greedy. A sampling run
 * whose temperature 0 comes from the model's generation_config.json (`configFile`, named in the error) is
 * a ModelConfigError: the file is the user's input. A temperature <= 0 passed explicitly stays the
 * caller's bug (RangeError when sampling starts); the CLI refuses such flags itself.
 */
export function resolveSampling(
  options: SamplingOptions,
  config: HfGenerationConfig | null | undefined,
  configFile = "generation_config.json",
): Required<SamplingOptions> {
  const explicitSampling = options.temperature !== undefined || options.topP !== undefined || options.topK !== undefined;
  const greedy = options.greedy ?? (explicitSampling ? false : !(config?.do_sample ?? false));
  const temperature = options.temperature ?? config?.temperature ?? 1;
  if (!greedy && options.temperature === undefined && !(temperature > 0)) {
    throw new ModelConfigError({
      message: `${configFile}: temperature ${temperature} cannot sample (do_sample is true); set do_sample to false for greedy decoding, or pass a temperature > 0`,
      file: configFile,
    });
  }
  return {
    greedy,
    temperature,
    topP: options.topP ?? config?.top_p ?? 1,
    topK: options.topK ?? config?.top_k ?? 0,
  };
}

export interface GenerateResult {
  /** Per output row: prompt ids (pads included) then new ids. */
  outputIds: number[][];
  /** Per output row: the new ids up to and including its EOS (no padding). */
  newIds: number[][];
  finishReasons: ("eos" | "length")[];
  /** Index of the prompt each output row came from. */
  promptIndex: number[];
}

/**
 * Generates from rectangular prompts `inputIds` (rows of equal length, or one row; left padding marked
 * in `attentionMask`). Pass the LoadedModel to use its generation_config.json and EOS ids as defaults.
 * Runs every decode step synchronously; `generateEffect` (./generate-effect.ts) is the same run yielding
 * to the event loop between steps.
 */
export function generate(
  model: Decoder | LoadedModel,
  promptIds: IdRowsInput,
  promptMask: IdRowsInput | null,
  generateOptions: GenerateOptions,
): GenerateResult {
  const run = startGeneration(model, promptIds, promptMask, generateOptions);
  try {
    while (!run.done) run.step();
    return run.result();
  } finally {
    run.dispose();
  }
}

/**
 * Checks the arguments (IdShapeError, ContextLengthError, MemoryBudgetError; RangeError for a
 * maxNewTokens / samples that is not a positive integer), resolves the decoding settings and runs the
 * prompt pass: a run ready for its first decode step, which the caller disposes.
 */
export function startGeneration(
  model: Decoder | LoadedModel,
  promptIds: IdRowsInput,
  promptMask: IdRowsInput | null,
  generateOptions: GenerateOptions,
): GenerationRun {
  const decoder = model instanceof Decoder ? model : model.decoder;
  const loaded = model instanceof Decoder ? null : model;
  const inputIds = idRows("inputIds", promptIds);
  const attentionMask = promptMask === null ? null : idRows("attentionMask", promptMask);
  const rows = inputIds.length;
  const length = inputIds[0]!.length;
  if (attentionMask && (attentionMask.length !== rows || attentionMask[0]!.length !== length)) {
    throw new IdShapeError({
      argument: "attentionMask",
      message: `attentionMask: shape [${attentionMask.length}, ${attentionMask[0]!.length}] differs from inputIds [${rows}, ${length}]`,
    });
  }
  const eosTokenIds = generateOptions.eosTokenIds ?? loaded?.eosTokenIds ?? [];
  const sampling = resolveSampling(
    generateOptions,
    generateOptions.generationConfig !== undefined ? generateOptions.generationConfig : loaded?.generationConfig,
    loaded && generateOptions.generationConfig === undefined ? join(loaded.dir, "generation_config.json") : undefined,
  );
  const maxNewTokens = generateOptions.maxNewTokens;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 1)
    throw new RangeError(`generate: maxNewTokens must be a positive integer, got ${maxNewTokens}`);
  const samples = generateOptions.samples ?? 1;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new RangeError(`generate: samples must be a positive integer, got ${samples}`);
  checkGenerationBudget(decoder.spec, decoder.dtype, decoder.device, { rows, promptLength: length, maxNewTokens, samples });
  return new GenerationRun(decoder, inputIds, attentionMask, {
    sampling,
    maxNewTokens,
    samples,
    eosTokenIds,
    padTokenId: generateOptions.padTokenId ?? eosTokenIds[0] ?? 0,
    seed: generateOptions.seed,
    onStep: generateOptions.onStep,
  });
}

/** Left-pads token-id prompts to a rectangle; returns ids and attention mask. */
export function leftPad(prompts: readonly (readonly number[])[], padTokenId: number): { ids: number[][]; mask: number[][] } {
  const width = Math.max(...prompts.map((p) => p.length));
  return {
    ids: prompts.map((p) => [...new Array<number>(width - p.length).fill(padTokenId), ...p]),
    mask: prompts.map((p) => [...new Array<number>(width - p.length).fill(0), ...new Array<number>(p.length).fill(1)]),
  };
}
