/**
 * The study's analyses of learned solutions, as functions over a loaded model:
 * - efficiency: fixed-subset loss against the rescaled norm of a steering vector or LoRA solution
 *   (our or the study's rescaling semantics, rescale.ts), and the equal-norm comparison of two
 *   solutions (loss(narrow) - loss(general) on a common norm grid);
 * - stability: (L_eps - L_0) / (L_base - L_0) under orthogonal norm-preserving perturbations, mean and
 *   standard deviation over seeds (population, as numpy, and sample);
 * - significance: KL(base || steered) over the tokens of a text corpus for vectors rescaled over a
 *   norm grid and multiplied by each vector's alpha, or for whole LoRA solutions (pads excluded by
 *   default; the study's inclusion of pads as an option).
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
import { type AdapterSolution, adapterNorm, bMatrices, perturbInPlace, type RescaleMode, rescaleAdapter, snapshot } from "./rescale.js";

export interface CurvePoint {
  scale: number;
  norm: number;
  loss: number;
}

/** Loss with a steering vector rescaled to scale * ||v|| (alpha kept, the norm is of v without alpha), for each scale. */
export function steeringEfficiency(
  model: LoadedModel,
  steering: SteeringVector,
  examples: readonly Example[],
  scales: readonly number[],
  padId = 0,
): CurvePoint[] {
  const base = tidy(() => steering.vector.norm().toNumber());
  return scales.map((scale) => ({
    scale,
    norm: scale * base,
    loss: withSteeringNorm(steering, scale * base, () => datasetLoss(model, examples, { padId })),
  }));
}

/** Runs `fn` with v rescaled to norm `target`, restoring v afterwards. */
export function withSteeringNorm<T>(steering: SteeringVector, target: number, fn: () => T): T {
  const original = keep(tidy(() => steering.vector.detach().clone()));
  try {
    noGrad(() => tidy(() => void steering.vector.copy_(original.mul(target).div(original.norm().clamp(1e-30)))));
    return fn();
  } finally {
    noGrad(() => void steering.vector.copy_(original));
    original.dispose();
  }
}

/** Runs `fn` with the adapter solution rescaled to norm `target` under `mode`, restoring every B afterwards. */
export function withAdapterNorm<T>(adapters: AdapterSolution, target: number, mode: RescaleMode, fn: () => T): T {
  const restore = snapshot(bMatrices(adapters));
  try {
    rescaleAdapter(adapters, target, mode);
    return fn();
  } finally {
    restore();
  }
}

/** Loss with the adapter solution rescaled to scale * its reference norm (see RescaleMode), for each scale. */
export function adapterEfficiency(
  model: LoadedModel,
  adapters: AdapterSolution,
  examples: readonly Example[],
  scales: readonly number[],
  padId = 0,
  mode: RescaleMode = "ours",
): CurvePoint[] {
  const reference = adapterNorm(adapters, mode);
  return scales.map((scale) => ({
    scale,
    norm: scale * reference,
    loss: withAdapterNorm(adapters, scale * reference, mode, () => datasetLoss(model, examples, { padId })),
  }));
}

/** A learned solution seen by the norm analyses: its reference norm and a way to evaluate it at another norm. */
export interface NormSolution {
  readonly norm: number;
  /** Runs `fn` with the solution active (attached) at norm `target`, and nothing else of it afterwards. */
  at<T>(target: number, fn: () => T): T;
}

export interface ComparisonPoint {
  norm: number;
  narrow: number;
  general: number;
  /** loss(narrow) - loss(general) */
  difference: number;
}

/**
 * The study's equal-norm comparison: norms = scales * mean(narrow.norm, general.norm); at each, the
 * loss of each solution rescaled to that norm and loss(narrow) - loss(general).
 */
export function compareAtEqualNorm(
  model: LoadedModel,
  narrow: NormSolution,
  general: NormSolution,
  examples: readonly Example[],
  scales: readonly number[],
  options: { padId?: number; onProgress?: (done: number, total: number) => void } = {},
): { reference: number; points: ComparisonPoint[] } {
  const reference = (narrow.norm + general.norm) / 2;
  const points = scales.map((scale, i) => {
    const norm = scale * reference;
    const lossNarrow = narrow.at(norm, () => datasetLoss(model, examples, { padId: options.padId }));
    const lossGeneral = general.at(norm, () => datasetLoss(model, examples, { padId: options.padId }));
    options.onProgress?.(i + 1, scales.length);
    return { norm, narrow: lossNarrow, general: lossGeneral, difference: lossNarrow - lossGeneral };
  });
  return { reference, points };
}

export interface StabilityPoint {
  eps: number;
  /** (L_eps - L_0) / (L_base - L_0) * 100, mean over seeds. */
  mean: number;
  /** Population standard deviation over seeds (numpy's default, the study's). */
  stdPopulation: number;
  /** Sample standard deviation (n - 1). */
  std: number;
  losses: number[];
}

/**
 * Perturbs `tensors` (a steering vector, or every LoRA A and B of the solution) with each eps and
 * seed, measuring the fixed-subset loss; L_0 is the unperturbed loss, L_base the loss with the
 * solution switched off.
 */
export function stability(
  model: LoadedModel,
  tensors: readonly Tensor[],
  examples: readonly Example[],
  options: {
    eps: readonly number[];
    seeds: readonly number[];
    baseLoss: number;
    padId?: number;
    onProgress?: (done: number, total: number) => void;
  },
): { l0: number; lBase: number; points: StabilityPoint[] } {
  const l0 = datasetLoss(model, examples, { padId: options.padId });
  const total = options.eps.length * options.seeds.length;
  let done = 0;
  const points = options.eps.map((eps) =>
    stabilityPoint(model, tensors, examples, eps, { ...options, l0, onSeed: () => options.onProgress?.(++done, total) }),
  );
  return { l0, lBase: options.baseLoss, points };
}

/** One eps of `stability`: the loss under each seed's perturbation, relative to L_0 (`l0`) and L_base, with its mean and stds. */
export function stabilityPoint(
  model: LoadedModel,
  tensors: readonly Tensor[],
  examples: readonly Example[],
  eps: number,
  options: { seeds: readonly number[]; l0: number; baseLoss: number; padId?: number; onSeed?: () => void },
): StabilityPoint {
  const losses = options.seeds.map((seed) => {
    const restore = snapshot(tensors);
    try {
      perturbInPlace(tensors, eps, seed);
      return datasetLoss(model, examples, { padId: options.padId });
    } finally {
      restore();
      options.onSeed?.();
    }
  });
  const relative = losses.map((l) => (100 * (l - options.l0)) / (options.baseLoss - options.l0));
  const mean = relative.reduce((a, b) => a + b, 0) / relative.length;
  const squares = relative.reduce((a, b) => a + (b - mean) ** 2, 0);
  return {
    eps,
    mean,
    stdPopulation: Math.sqrt(squares / relative.length),
    std: Math.sqrt(squares / Math.max(1, relative.length - 1)),
    losses,
  };
}

export interface SignificancePoint {
  label: string;
  norm: number;
  kl: number;
}

export interface SignificanceOptions {
  /** Tokens per document (the study: 512). */
  maxTokens?: number;
  batchSize?: number;
  /** Average over padded positions too (the study's compute_kl_from_logits does); default false. */
  includePads?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** One condition of a KL sweep: switched on by apply(), which returns its undo. */
interface KlCondition {
  label: string;
  norm: number;
  apply: () => () => void;
}

/**
 * KL(base || condition) = sum_v p_base (log p_base - log p_cond), averaged over the positions of all
 * documents (raw text, no chat template, right-padded batches), for each condition. The base is the
 * model as loaded; base log-probabilities are computed once per batch.
 */
function klSweep(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  documents: readonly string[],
  conditions: readonly KlCondition[],
  options: SignificanceOptions,
): SignificancePoint[] {
  if (documents.length === 0) throw new RangeError("significance: no documents");
  const encoded = documents.map((t, i) => {
    const ids = tokenizer.encode(t).slice(0, options.maxTokens ?? 512);
    if (ids.length === 0) throw new RangeError(`significance: document ${i + 1} has no tokens`);
    return ids;
  });
  const batchSize = options.batchSize ?? 2;
  const pad = tokenizer.padTokenId ?? 0;
  const device = model.decoder.device;
  const totals = conditions.map(() => 0);
  const counts = conditions.map(() => 0);
  const batches = Math.ceil(encoded.length / batchSize);
  inferenceMode(() => {
    for (let i = 0; i < encoded.length; i += batchSize) {
      tidy(() => {
        const part = encoded.slice(i, i + batchSize);
        const width = Math.max(...part.map((p) => p.length));
        const shape = [part.length, width];
        const ids = tensor(
          BigInt64Array.from(
            part.flatMap((p) => [...p, ...new Array<number>(width - p.length).fill(pad)]),
            BigInt,
          ),
          { shape, device },
        );
        const mask = tensor(
          BigInt64Array.from(
            part.flatMap((p) => Array.from({ length: width }, (_, j) => (j < p.length ? 1 : 0))),
            BigInt,
          ),
          { shape, device },
        );
        const base = model.decoder.forward(ids, { attentionMask: mask }).logits!.to("f32").logSoftmax(-1);
        const pBase = base.exp();
        const weights = options.includePads ? onesLike(mask).to("f32") : mask.to("f32");
        const count = weights.sum().toNumber();
        conditions.forEach((c, k) => {
          const undo = c.apply();
          try {
            totals[k]! += tidy(() => {
              const other = model.decoder.forward(ids, { attentionMask: mask }).logits!.to("f32").logSoftmax(-1);
              return pBase.mul(base.sub(other)).sum(-1).mul(weights).sum().toNumber();
            });
            counts[k]! += count;
          } finally {
            undo();
          }
        });
      });
      options.onProgress?.(Math.floor(i / batchSize) + 1, batches);
    }
  });
  return conditions.map((c, k) => ({ label: c.label, norm: c.norm, kl: counts[k] === 0 ? Number.NaN : totals[k]! / counts[k]! }));
}

/** A vector of the significance sweep and the alpha it is multiplied by (the file's, as the study). */
export interface SignificanceVector {
  label: string;
  vector: Tensor;
  alpha?: number;
}

/**
 * KL(base || steered) over `documents` for each vector rescaled to each norm n and multiplied by its
 * alpha (options.alpha overrides every vector's), added at `layer`'s `site` (the study: the layer's
 * output, resid_post): the added vector has norm alpha * n.
 */
export function significance(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  documents: readonly string[],
  vectors: readonly SignificanceVector[],
  options: SignificanceOptions & { layer: number; site?: LayerPoint; alpha?: number; norms: readonly number[] },
): SignificancePoint[] {
  const units = vectors.map((v) =>
    keep(
      tidy(() => {
        const flat = v.vector.to({ dtype: "f32", device: model.decoder.device }).flatten();
        return flat.div(flat.norm().clamp(1e-30));
      }),
    ),
  );
  try {
    const conditions: KlCondition[] = vectors.flatMap((v, i) =>
      options.norms.map((norm) => ({
        label: v.label,
        norm,
        apply: () => {
          const added = keep(tidy(() => units[i]!.mul(norm)));
          const handle = model.decoder.hooks.add(
            layerPoint(options.layer, options.site ?? "resid_post"),
            addHook(added, options.alpha ?? v.alpha ?? 1),
          );
          return () => {
            handle.remove();
            added.dispose();
          };
        },
      })),
    );
    return klSweep(model, tokenizer, documents, conditions, options);
  } finally {
    for (const u of units) u.dispose();
  }
}

/**
 * The study's LoRA form: KL(base || base + solution) over `documents` for each adapter solution (one
 * or several adapters applied together), attached one solution at a time. `norm` is the solution's
 * mean module ||BA||_F.
 */
export function adapterSignificance(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  documents: readonly string[],
  solutions: readonly { label: string; adapters: readonly LoraAdapter[] }[],
  options: SignificanceOptions = {},
): SignificancePoint[] {
  const conditions: KlCondition[] = solutions.map((s) => ({
    label: s.label,
    norm: adapterNorm(s.adapters, "study"),
    apply: () => {
      for (const a of s.adapters) model.decoder.adapters.attach(a);
      return () => {
        for (const a of s.adapters) model.decoder.adapters.detach(a);
      };
    },
  }));
  return klSweep(model, tokenizer, documents, conditions, options);
}
