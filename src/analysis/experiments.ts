/**
 * The study's analyses of learned solutions, as functions over a loaded model:
 * - efficiency: fixed-subset loss against the rescaled norm of a steering vector or LoRA adapter;
 * - stability: (L_eps - L_0) / (L_base - L_0) under orthogonal norm-preserving perturbations, mean and
 *   std over seeds;
 * - significance: KL(chat || steered) over the tokens of a text corpus for vectors rescaled over a
 *   norm grid (pads excluded by default; the study's inclusion of pads as an option).
 */
import type { LoraAdapter } from "../adapters/lora.js";
import type { LoadedModel } from "../models/load.js";
import { addHook } from "../hooks/interventions.js";
import { layerPoint, type LayerPoint } from "../hooks/points.js";
import { inferenceMode, keep, noGrad, onesLike, type Tensor, tensor, tidy } from "../tensor/index.js";
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import type { Example } from "../train/data.js";
import type { SteeringVector } from "../train/steering.js";
import { datasetLoss } from "./loss.js";
import { adapterNorm, perturbInPlace, rescaleAdapter, snapshot } from "./rescale.js";

export interface CurvePoint {
  scale: number;
  norm: number;
  loss: number;
}

/** Loss with a steering vector rescaled to scale * ||v|| (alpha kept), for each scale. */
export function steeringEfficiency(model: LoadedModel, steering: SteeringVector, examples: readonly Example[], scales: readonly number[], padId = 0): CurvePoint[] {
  const original = keep(tidy(() => steering.vector.detach().clone()));
  const base = tidy(() => original.norm().toNumber());
  try {
    return scales.map((scale) => {
      noGrad(() => tidy(() => void steering.vector.copy_(original.mul(scale))));
      return { scale, norm: scale * base, loss: datasetLoss(model, examples, { padId }) };
    });
  } finally {
    noGrad(() => void steering.vector.copy_(original));
    original.dispose();
  }
}

/** Loss with the adapter rescaled to scale * its reference norm (see rescaleAdapter), for each scale. */
export function adapterEfficiency(model: LoadedModel, adapter: LoraAdapter, examples: readonly Example[], scales: readonly number[], padId = 0): CurvePoint[] {
  const bs = [...adapter.modules.values()].map((m) => m.B);
  const reference = adapterNorm(adapter);
  const points: CurvePoint[] = [];
  for (const scale of scales) {
    const restore = snapshot(bs);
    try {
      rescaleAdapter(adapter, scale * reference);
      points.push({ scale, norm: scale * reference, loss: datasetLoss(model, examples, { padId }) });
    } finally {
      restore();
    }
  }
  return points;
}

export interface StabilityPoint {
  eps: number;
  /** (L_eps - L_0) / (L_base - L_0) * 100, mean and std over seeds. */
  mean: number;
  std: number;
  losses: number[];
}

/**
 * Perturbs `tensors` (a steering vector, or every LoRA A and B) with each eps and seed, measuring the
 * fixed-subset loss; L_0 is the unperturbed loss, L_base the loss with the solution switched off.
 */
export function stability(
  model: LoadedModel,
  tensors: readonly Tensor[],
  examples: readonly Example[],
  options: { eps: readonly number[]; seeds: readonly number[]; baseLoss: number; padId?: number; onProgress?: (done: number, total: number) => void },
): { l0: number; lBase: number; points: StabilityPoint[] } {
  const l0 = datasetLoss(model, examples, { padId: options.padId });
  const total = options.eps.length * options.seeds.length;
  let done = 0;
  const points = options.eps.map((eps) => {
    const losses = options.seeds.map((seed) => {
      const restore = snapshot(tensors);
      try {
        perturbInPlace(tensors, eps, seed);
        return datasetLoss(model, examples, { padId: options.padId });
      } finally {
        restore();
        options.onProgress?.(++done, total);
      }
    });
    const relative = losses.map((l) => (100 * (l - l0)) / (options.baseLoss - l0));
    const mean = relative.reduce((a, b) => a + b, 0) / relative.length;
    const std = Math.sqrt(relative.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, relative.length - 1));
    return { eps, mean, std, losses };
  });
  return { l0, lBase: options.baseLoss, points };
}

export interface SignificancePoint {
  label: string;
  norm: number;
  kl: number;
}

/**
 * KL(chat || steered) averaged over the tokens of `texts` (raw text, no chat template), for each
 * vector rescaled to each norm and added (times alpha) at `layer`'s `site`. Pads are excluded unless
 * `includePads` (the study's quirk).
 */
export function significance(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  texts: readonly string[],
  vectors: readonly { label: string; vector: Tensor }[],
  options: {
    layer: number;
    site?: LayerPoint;
    alpha?: number;
    norms: readonly number[];
    maxLength?: number;
    batchSize?: number;
    includePads?: boolean;
    onProgress?: (done: number, total: number) => void;
  },
): SignificancePoint[] {
  const encoded = texts.map((t) => tokenizer.encode(t).slice(0, options.maxLength ?? 512)).filter((ids) => ids.length > 10);
  const batchSize = options.batchSize ?? 2;
  const pad = tokenizer.padTokenId ?? 0;
  const device = model.decoder.device;
  const results: SignificancePoint[] = [];
  inferenceMode(() => {
    // Each batch's ids and mask are built once and reused for the base and every steered pass.
    const batches: { ids: Tensor; mask: Tensor }[] = [];
    const baseLogProbs: Tensor[] = [];
    try {
      for (let i = 0; i < encoded.length; i += batchSize) {
        const part = encoded.slice(i, i + batchSize);
        const width = Math.max(...part.map((p) => p.length));
        const shape = [part.length, width];
        const ids = part.flatMap((p) => [...p, ...new Array<number>(width - p.length).fill(pad)]);
        const mask = part.flatMap((p) => Array.from({ length: width }, (_, j) => (j < p.length ? 1 : 0)));
        batches.push({
          ids: keep(tensor(BigInt64Array.from(ids, BigInt), { shape, device })),
          mask: keep(tensor(BigInt64Array.from(mask, BigInt), { shape, device })),
        });
      }
      for (const b of batches) {
        baseLogProbs.push(keep(tidy(() => model.decoder.forward(b.ids, { attentionMask: b.mask }).logits!.to("f32").logSoftmax(-1))));
      }
      for (const { label, vector } of vectors) {
        for (const norm of options.norms) {
          let total = 0;
          let count = 0;
          tidy(() => {
            const unit = vector.to("f32").div(vector.to("f32").norm().clamp(1e-30));
            const handle = model.decoder.hooks.add(layerPoint(options.layer, options.site ?? "resid_post"), addHook(unit.mul(norm), options.alpha ?? 1));
            try {
              batches.forEach((b, i) =>
                tidy(() => {
                  const steered = model.decoder.forward(b.ids, { attentionMask: b.mask }).logits!.to("f32").logSoftmax(-1);
                  const base = baseLogProbs[i]!;
                  const perToken = base.exp().mul(base.sub(steered)).sum(-1); // [batch, pos]
                  const weights = options.includePads ? onesLike(perToken) : b.mask.to("f32");
                  total += perToken.mul(weights).sum().toNumber();
                  count += weights.sum().toNumber();
                }),
              );
            } finally {
              handle.remove();
            }
          });
          results.push({ label, norm, kl: count === 0 ? Number.NaN : total / count });
          options.onProgress?.(results.length, vectors.length * options.norms.length);
        }
      }
    } finally {
      for (const t of [...baseLogProbs, ...batches.flatMap((b) => [b.ids, b.mask])]) t.dispose();
    }
  });
  return results;
}
