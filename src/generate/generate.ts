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
import type { HfGenerationConfig } from "../models/hf-config.js";
import type { LoadedModel } from "../models/load.js";
import { Decoder } from "../nn/decoder.js";
import { KvCache } from "../nn/kv-cache.js";
import { cat, manualSeed, ones, type Tensor, tensor, tidy } from "../tensor/index.js";
import { IdShapeError, idRows, type IdRowsInput } from "./ids.js";
import { chooseNext, type SamplingOptions } from "./sampling.js";
import { checkGenerationBudget } from "./budget.js";

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

/** The decoding actually used: explicit options over generation_config.json over greedy. */
export function resolveSampling(options: SamplingOptions, config: HfGenerationConfig | null | undefined): Required<SamplingOptions> {
  const explicitSampling = options.temperature !== undefined || options.topP !== undefined || options.topK !== undefined;
  const greedy = options.greedy ?? (explicitSampling ? false : !(config?.do_sample ?? false));
  return {
    greedy,
    temperature: options.temperature ?? config?.temperature ?? 1,
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
 */
export function generate(
  model: Decoder | LoadedModel,
  promptIds: IdRowsInput,
  promptMask: IdRowsInput | null,
  generateOptions: GenerateOptions,
): GenerateResult {
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
  const eosDefault = generateOptions.eosTokenIds ?? loaded?.eosTokenIds;
  const options: GenerateOptions = {
    ...generateOptions,
    ...resolveSampling(
      generateOptions,
      generateOptions.generationConfig !== undefined ? generateOptions.generationConfig : loaded?.generationConfig,
    ),
    ...(eosDefault ? { eosTokenIds: eosDefault } : {}),
  };
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 1)
    throw new RangeError(`maxNewTokens: expected a positive integer, got ${options.maxNewTokens}`);
  const samples = options.samples ?? 1;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new RangeError(`generate: samples must be a positive integer, got ${samples}`);
  if (!Number.isSafeInteger(options.maxNewTokens) || options.maxNewTokens < 1)
    throw new RangeError(`generate: maxNewTokens must be a positive integer, got ${options.maxNewTokens}`);
  checkGenerationBudget(decoder.spec, decoder.dtype, decoder.device, {
    rows,
    promptLength: length,
    maxNewTokens: options.maxNewTokens,
    samples,
  });
  const eos = new Set(options.eosTokenIds ?? []);
  const pad = options.padTokenId ?? options.eosTokenIds?.[0] ?? 0;
  if (options.seed !== undefined) manualSeed(options.seed);

  const total = rows * samples;
  const promptIndex = Array.from({ length: total }, (_, i) => Math.floor(i / samples));
  const outputIds = promptIndex.map((p) => [...inputIds[p]!]);
  const newIds: number[][] = promptIndex.map(() => []);
  const finished = new Array<boolean>(total).fill(false);
  const finishReasons: ("eos" | "length")[] = new Array(total).fill("length");

  const device = decoder.device;
  let cache = new KvCache(decoder.numLayers, length + options.maxNewTokens);
  let mask: Tensor | null = null;
  let logits: Tensor | null = null;
  try {
    tidy(() => {
      const ids = tensor(
        BigInt64Array.from(inputIds.flat(), (v) => BigInt(v)),
        { shape: [rows, length], device },
      );
      const m = attentionMask
        ? tensor(
            BigInt64Array.from(attentionMask.flat(), (v) => BigInt(v)),
            { shape: [rows, length], device },
          )
        : ones([rows, length], { dtype: "i64", device });
      const out = decoder.forward(ids, { attentionMask: m, cache, logits: "last" }).logits!;
      if (samples > 1) {
        const repeat = tensor(
          BigInt64Array.from(promptIndex, (v) => BigInt(v)),
          { device },
        );
        const expanded = cache.selectRows(repeat);
        cache.dispose();
        cache = expanded;
        mask = m.indexSelect(0, repeat).share();
        logits = out.indexSelect(0, repeat).share();
      } else {
        mask = m.share();
        logits = out.share();
      }
      // share() makes handles that survive this scope; the originals are freed with it.
      return [mask, logits];
    });

    for (let step = 0; step < options.maxNewTokens; step++) {
      const chosen = tidy(() => Array.from(chooseNext(logits!.select(1, 0), options).toArray() as BigInt64Array, Number));
      const tokens = chosen.map((t, i) => (finished[i] ? pad : t));
      tokens.forEach((t, i) => {
        outputIds[i]!.push(t);
        if (!finished[i]) {
          newIds[i]!.push(t);
          if (eos.has(t)) {
            finished[i] = true;
            finishReasons[i] = "eos";
          }
        }
      });
      options.onStep?.(tokens, step);
      if (finished.every(Boolean) || step === options.maxNewTokens - 1) break;
      const previousMask: Tensor = mask!;
      const previousLogits: Tensor = logits!;
      [mask, logits] = tidy(() => {
        const next = tensor(
          BigInt64Array.from(tokens, (v) => BigInt(v)),
          { shape: [total, 1], device },
        );
        const grown = cat([previousMask, ones([total, 1], { dtype: "i64", device })], 1);
        const out = decoder.forward(next, { attentionMask: grown, cache, logits: "last" }).logits!;
        return [grown, out];
      });
      previousMask.dispose();
      previousLogits.dispose();
    }
  } finally {
    cache.dispose();
    (mask as Tensor | null)?.dispose();
    (logits as Tensor | null)?.dispose();
  }
  return { outputIds, newIds, finishReasons, promptIndex };
}

/** Left-pads token-id prompts to a rectangle; returns ids and attention mask. */
export function leftPad(prompts: readonly (readonly number[])[], padTokenId: number): { ids: number[][]; mask: number[][] } {
  const width = Math.max(...prompts.map((p) => p.length));
  return {
    ids: prompts.map((p) => [...new Array<number>(width - p.length).fill(padTokenId), ...p]),
    mask: prompts.map((p) => [...new Array<number>(width - p.length).fill(0), ...new Array<number>(p.length).fill(1)]),
  };
}
