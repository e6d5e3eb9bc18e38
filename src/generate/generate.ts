/**
 * Batched generation with a KV cache: left-padded prompts (positions from the attention mask), greedy
 * or sampled decoding, stop on any EOS id per row, several samples per prompt from one prefill, hooks
 * active throughout. Output follows Hugging Face `generate`: each row holds its input ids (pads
 * included) then the new ids, with the pad id after a row has finished.
 */
import type { Decoder } from "../nn/decoder.js";
import { KvCache } from "../nn/kv-cache.js";
import { cat, manualSeed, ones, type Tensor, tensor, tidy } from "../tensor/index.js";
import { chooseNext, type SamplingOptions } from "./sampling.js";

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

/** Generates from rectangular prompts `inputIds` (rows of equal length; left padding marked in `attentionMask`). */
export function generate(
  decoder: Decoder,
  inputIds: readonly (readonly number[])[],
  attentionMask: readonly (readonly number[])[] | null,
  options: GenerateOptions,
): GenerateResult {
  const rows = inputIds.length;
  const length = inputIds[0]?.length ?? 0;
  if (rows === 0 || length === 0) throw new RangeError("generate: need at least one non-empty prompt");
  if (inputIds.some((r) => r.length !== length)) throw new RangeError("generate: prompt rows must have equal length (pad them)");
  if (attentionMask && (attentionMask.length !== rows || attentionMask.some((r) => r.length !== length))) {
    throw new RangeError("generate: attention mask must have the shape of the input ids");
  }
  const samples = options.samples ?? 1;
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
      const ids = tensor(BigInt64Array.from(inputIds.flat(), (v) => BigInt(v)), { shape: [rows, length], device });
      const m = attentionMask
        ? tensor(BigInt64Array.from(attentionMask.flat(), (v) => BigInt(v)), { shape: [rows, length], device })
        : ones([rows, length], { dtype: "i64", device });
      const out = decoder.forward(ids, { attentionMask: m, cache, logits: "last" }).logits!;
      if (samples > 1) {
        const repeat = tensor(BigInt64Array.from(promptIndex, (v) => BigInt(v)), { device });
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
        const next = tensor(BigInt64Array.from(tokens, (v) => BigInt(v)), { shape: [total, 1], device });
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
