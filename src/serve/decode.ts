/**
 * Batched decoding for the server: several requests (each a prompt with its own sample count, token
 * limit, sampling settings, seed and logprob request) decoded together in one batch, yielding to the
 * event loop between steps. Each request reproduces `generate()` for it alone: its rows come from one
 * prefill of its prompt, and its next tokens are drawn with its own generator state (the CPU
 * generator's state saved and restored around each request's draw), so a request's output does not
 * depend on what else is in the batch. Requests leave the batch (their cache rows are dropped) when
 * all their rows have finished or they are cancelled.
 */
import { leftPad } from "../generate/generate.js";
import { chooseNext, type SamplingOptions } from "../generate/sampling.js";
import type { Decoder } from "../nn/decoder.js";
import { KvCache } from "../nn/kv-cache.js";
import { cat, getRngState, keep, manualSeed, ones, setRngState, type Tensor, tensor, tidy } from "../tensor/index.js";

export interface TokenLogprob {
  token: number;
  logprob: number;
  /** The most likely tokens at this step (empty unless top logprobs were asked for). */
  top: { token: number; logprob: number }[];
}

export interface DecodeRequest {
  prompt: readonly number[];
  samples: number;
  maxNewTokens: number;
  sampling: Required<SamplingOptions>;
  seed: number;
  /** null: no logprobs; k >= 0: the chosen token's log-probability and the k most likely. */
  topLogprobs: number | null;
  /**
   * Called with every new token of a row that has not finished (EOS ids included); returning true
   * finishes the row (a stop string matched).
   */
  onToken?: (sample: number, token: number, logprob: TokenLogprob | null) => boolean | void;
  /** Polled between steps: true drops the request from the batch. */
  cancelled?: () => boolean;
}

export interface DecodedSample {
  /** New ids up to and including the EOS or the token that completed a stop string. */
  ids: number[];
  logprobs: TokenLogprob[];
  finish: "eos" | "stop" | "length" | "cancelled";
}

interface Active {
  index: number;
  request: DecodeRequest;
  /** First batch row of this request in the current batch. */
  offset: number;
  rng: Tensor;
  step: number;
  done: boolean[];
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Decodes `requests` in one batch; returns each request's samples. `eosTokenIds` end a row; finished
 * rows are fed `padTokenId` (as generate() does).
 */
export async function decodeBatch(
  decoder: Decoder,
  requests: readonly DecodeRequest[],
  options: { eosTokenIds: readonly number[]; padTokenId: number },
): Promise<DecodedSample[][]> {
  const eos = new Set(options.eosTokenIds);
  const results: DecodedSample[][] = requests.map((r) =>
    Array.from({ length: r.samples }, () => ({ ids: [], logprobs: [], finish: "length" as DecodedSample["finish"] })),
  );
  if (requests.length === 0) return results;
  const device = decoder.device;
  const { ids: paddedIds, mask: paddedMask } = leftPad(
    requests.map((r) => r.prompt),
    options.padTokenId,
  );
  const width = paddedIds[0]!.length;
  const longest = Math.max(...requests.map((r) => r.maxNewTokens));
  const rowOf: number[] = requests.flatMap((r, i) => new Array<number>(r.samples).fill(i));
  let cache = new KvCache(decoder.numLayers, width + longest);
  let mask: Tensor | null = null;
  let logits: Tensor | null = null;
  const active: Active[] = [];
  try {
    [mask, logits] = tidy(() => {
      const ids = tensor(BigInt64Array.from(paddedIds.flat(), BigInt), { shape: [requests.length, width], device });
      const m = tensor(BigInt64Array.from(paddedMask.flat(), BigInt), { shape: [requests.length, width], device });
      const out = decoder.forward(ids, { attentionMask: m, cache, logits: "last" }).logits!;
      const repeat = tensor(BigInt64Array.from(rowOf, BigInt), { device });
      const expanded = cache.selectRows(repeat);
      cache.dispose();
      cache = expanded;
      return [keep(m.indexSelect(0, repeat)), keep(out.indexSelect(0, repeat))];
    });
    let offset = 0;
    requests.forEach((request, index) => {
      manualSeed(request.seed);
      active.push({ index, request, offset, rng: keep(getRngState()), step: 0, done: new Array<boolean>(request.samples).fill(false) });
      offset += request.samples;
    });

    while (active.length > 0) {
      const total = active.reduce((n, a) => n + a.request.samples, 0);
      const nextTokens = new Array<number>(total).fill(options.padTokenId);
      for (const a of active) {
        const { request } = a;
        const drawn = tidy(() => {
          const rows = logits!.select(1, 0).narrow(0, a.offset, request.samples);
          setRngState(a.rng);
          const chosen = chooseNext(rows, request.sampling);
          const state = keep(getRngState());
          a.rng.dispose();
          a.rng = state;
          const tokens = Array.from(chosen.toArray() as BigInt64Array, Number);
          let logprobs: TokenLogprob[] | null = null;
          if (request.topLogprobs !== null) {
            const lp = rows.to("f32").logSoftmax(-1);
            const picked = Array.from(lp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).toArray() as Float32Array, Number);
            const k = request.topLogprobs;
            let topValues: number[] = [];
            let topIds: number[] = [];
            if (k > 0) {
              const top = lp.topk(k, -1);
              topValues = Array.from(top.values.toArray() as Float32Array, Number);
              topIds = Array.from(top.indices.toArray() as BigInt64Array, Number);
            }
            logprobs = tokens.map((token, s) => ({
              token,
              logprob: picked[s]!,
              top: Array.from({ length: k }, (_, j) => ({ token: topIds[s * k + j]!, logprob: topValues[s * k + j]! })),
            }));
          }
          return { tokens, logprobs };
        });
        drawn.tokens.forEach((token, s) => {
          // Rows finished on an earlier step are fed the pad id, as generate() does.
          if (a.done[s]) return;
          const out = results[a.index]![s]!;
          out.ids.push(token);
          const logprob = drawn.logprobs?.[s] ?? null;
          if (logprob) out.logprobs.push(logprob);
          nextTokens[a.offset + s] = token;
          if (eos.has(token)) {
            a.done[s] = true;
            out.finish = "eos";
          }
          if (request.onToken?.(s, token, logprob) === true && !a.done[s]) {
            a.done[s] = true;
            out.finish = "stop";
          }
        });
        a.step++;
      }
      const leaving = active.filter((a) => a.done.every(Boolean) || a.step >= a.request.maxNewTokens || (a.request.cancelled?.() ?? false));
      for (const a of leaving) {
        if (a.request.cancelled?.()) a.done.forEach((d, s) => void (!d && (results[a.index]![s]!.finish = "cancelled")));
      }
      const staying = active.filter((a) => !leaving.includes(a));
      if (staying.length === 0) {
        for (const a of leaving) a.rng.dispose();
        active.length = 0;
        break;
      }
      const keepRows = staying.flatMap((a) => Array.from({ length: a.request.samples }, (_, s) => a.offset + s));
      const fed = keepRows.map((row) => nextTokens[row]!);
      const previousMask: Tensor = mask!;
      const previousLogits: Tensor = logits!;
      [mask, logits] = tidy(() => {
        let m = previousMask;
        if (leaving.length > 0) {
          const index = tensor(BigInt64Array.from(keepRows, BigInt), { device });
          const smaller = cache.selectRows(index);
          cache.dispose();
          cache = smaller;
          m = previousMask.indexSelect(0, index);
        }
        const next = tensor(BigInt64Array.from(fed, BigInt), { shape: [fed.length, 1], device });
        const grown = cat([m, ones([fed.length, 1], { dtype: "i64", device })], 1);
        const out = decoder.forward(next, { attentionMask: grown, cache, logits: "last" }).logits!;
        return [keep(grown), keep(out)];
      });
      previousMask.dispose();
      previousLogits.dispose();
      for (const a of leaving) a.rng.dispose();
      let next = 0;
      for (const a of staying) {
        a.offset = next;
        next += a.request.samples;
      }
      active.splice(0, active.length, ...staying);
      await nextTick();
    }
  } finally {
    for (const a of active) a.rng.dispose();
    cache.dispose();
    (mask as Tensor | null)?.dispose();
    (logits as Tensor | null)?.dispose();
  }
  return results;
}
