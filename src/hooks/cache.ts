/**
 * Activation caches and activation patching. `runWithCache` runs one forward pass and returns the
 * activations at chosen hook points (detached copies, named as the points), optionally with the
 * gradient of a scalar metric with respect to each of them: on a frozen model too, because a point
 * whose activation is not in the autograd graph is made a leaf there (nothing upstream needs a
 * gradient then). `patchActivations` runs a clean and a corrupted input, writes the clean activations
 * into the corrupted run at chosen points (all positions or some) and reports a metric of each run.
 */
import { idTensor, type IdRowsInput } from "../generate/ids.js";
import type { Decoder, ForwardOutput } from "../nn/decoder.js";
import { enableGrad, grad, keep, noGrad, type Tensor, tensor, tidy, where } from "../tensor/index.js";
import { parseLayerPoint, type HookPoint } from "./points.js";
import type { HookFn } from "./registry.js";

export interface CacheOptions {
  /** Points to cache (validated against the model). */
  points: readonly HookPoint[];
  /** [batch, pos] 1 / 0 (padding), as for forward(). */
  attentionMask?: Tensor | null;
  /** A scalar of the pass (e.g. a logit difference); its gradient with respect to each point is cached too. */
  backward?: (output: { logits: Tensor; activations: ReadonlyMap<HookPoint, Tensor> }) => Tensor;
}

/** Activations (and gradients) by hook point; owns its tensors: dispose() frees them. */
export class ActivationCache {
  constructor(
    private readonly activations: Map<HookPoint, Tensor>,
    private readonly gradients: Map<HookPoint, Tensor>,
    /** The pass's logits [batch, pos, vocab] (detached). */
    readonly logits: Tensor,
    /** The metric's value when `backward` was given, else null. */
    readonly metric: number | null,
  ) {}

  get points(): HookPoint[] {
    return [...this.activations.keys()];
  }

  /** The activation at `point`; throws for a point that was not cached. */
  get(point: HookPoint): Tensor {
    const t = this.activations.get(point);
    if (!t) throw new RangeError(`${point} is not in the cache (cached: ${this.points.join(", ")})`);
    return t;
  }

  /** d(metric)/d(activation) at `point` (zeros where the metric does not depend on it). */
  grad(point: HookPoint): Tensor {
    if (this.metric === null) throw new RangeError("the cache has no gradients: pass `backward` to runWithCache");
    const t = this.gradients.get(point);
    if (!t) throw new RangeError(`${point} is not in the cache (cached: ${this.points.join(", ")})`);
    return t;
  }

  dispose(): void {
    for (const t of [...this.activations.values(), ...this.gradients.values(), this.logits]) t.dispose();
    this.activations.clear();
    this.gradients.clear();
  }
}

/** One forward pass of `decoder` on `ids` ([batch, pos], or one row [pos]) with the `points` cached. */
export function runWithCache(decoder: Decoder, ids: IdRowsInput | Tensor, options: CacheOptions): ActivationCache {
  for (const point of options.points)
    if (!decoder.hooks.accepts(point)) throw new RangeError(`unknown hook point ${JSON.stringify(point)}`);
  const withGrad = options.backward !== undefined;
  // In the graph already: its gradient is taken there. Not in the graph (frozen model, nothing upstream
  // trainable): a leaf equal in value stands in for it.
  const track: HookFn = (x) => (withGrad && !x.requiresGrad ? x.detach().requiresGrad_() : undefined);
  const result = tidy(() => {
    const input = idTensor("ids", ids, decoder.device);
    const run = () =>
      decoder.hooks.withHooks(
        options.points.map((point) => [point, track] as const),
        () => decoder.forward(input, { attentionMask: options.attentionMask ?? null, capture: options.points }),
      );
    const out: ForwardOutput = withGrad ? enableGrad(run) : noGrad(run);
    const seen = out.activations;
    const activations = new Map<HookPoint, Tensor>();
    const gradients = new Map<HookPoint, Tensor>();
    let metric: number | null = null;
    if (withGrad) {
      const value = enableGrad(() => options.backward!({ logits: out.logits!, activations: seen }));
      if (value.numel !== 1) throw new RangeError(`runWithCache: backward must return a scalar, got shape [${value.shape.join(", ")}]`);
      metric = value.toNumber();
      // Functional gradients: no `.grad` of any model tensor is touched.
      const points = [...seen.keys()];
      const grads = grad(value, [...seen.values()], { allowUnused: true });
      points.forEach((point, i) => gradients.set(point, keep(noGrad(() => grads[i]?.detach() ?? seen.get(point)!.detach().mul(0)))));
    }
    for (const [point, t] of seen) activations.set(point, keep(noGrad(() => t.detach().clone())));
    return { activations, gradients, logits: keep(noGrad(() => out.logits!.detach().clone())), metric };
  });
  return new ActivationCache(result.activations, result.gradients, result.logits, result.metric);
}

export interface PatchOptions {
  /** Points whose clean activations replace the corrupted run's. */
  points: readonly HookPoint[];
  /** A number from a run's logits [batch, pos, vocab] (e.g. a logit difference at the last position). */
  metric: (logits: Tensor) => number;
  /** Patch only these sequence positions (default: all); clean and corrupted must have the same length. */
  positions?: readonly number[];
  /** Also patch each point alone and report its metric in `byPoint`. */
  eachPoint?: boolean;
}

export interface PatchResult {
  clean: number;
  corrupted: number;
  /** The corrupted run with every point patched. */
  patched: number;
  /** Per point, patched alone (with `eachPoint`). */
  byPoint: Map<HookPoint, number>;
}

/** Activation patching: run `clean`, patch its activations into the `corrupted` run, report `metric`. */
export function patchActivations(
  decoder: Decoder,
  clean: IdRowsInput | Tensor,
  corrupted: IdRowsInput | Tensor,
  options: PatchOptions,
): PatchResult {
  const cache = runWithCache(decoder, clean, { points: options.points });
  try {
    return tidy(() => {
      const corruptedIds = idTensor("corrupted", corrupted, decoder.device);
      if (corruptedIds.size(1) !== cache.logits.size(1)) {
        throw new RangeError(
          `patchActivations: clean has ${cache.logits.size(1)} positions, corrupted ${corruptedIds.size(1)}; activations can only be patched between equal lengths`,
        );
      }
      const metricOf = (points: readonly HookPoint[]) =>
        noGrad(() =>
          tidy(() => {
            const hooks = points.map((point): readonly [HookPoint, HookFn] => [
              point,
              (x) => patched(x, cache.get(point), point, options.positions),
            ]);
            const logits = decoder.hooks.withHooks(hooks, () => decoder.forward(corruptedIds).logits!);
            return options.metric(logits);
          }),
        );
      const byPoint = new Map<HookPoint, number>();
      if (options.eachPoint) for (const point of options.points) byPoint.set(point, metricOf([point]));
      return { clean: tidy(() => options.metric(cache.logits)), corrupted: metricOf([]), patched: metricOf(options.points), byPoint };
    });
  } finally {
    cache.dispose();
  }
}

/** `x` with the clean activation written in (at `positions` of the sequence dimension only, when given). */
function patched(x: Tensor, clean: Tensor, point: HookPoint, positions: readonly number[] | undefined): Tensor {
  if (clean.shape.join() !== x.shape.join())
    throw new RangeError(`${point}: clean activation [${clean.shape.join(", ")}] vs corrupted [${x.shape.join(", ")}]`);
  const source = clean.to({ dtype: x.dtype, device: x.device });
  if (positions === undefined) return source;
  // Sequence dimension: 2 for the per-head points [batch, heads, pos, ...], else 1.
  const inner = parseLayerPoint(point)?.point;
  const dim = inner === "attn.q" || inner === "attn.k" || inner === "attn.v" || inner === "attn.scores" || inner === "attn.pattern" ? 2 : 1;
  const length = x.size(dim);
  const flags = new Float32Array(length);
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0 || p >= length) throw new RangeError(`positions: ${p} outside 0..${length - 1}`);
    flags[p] = 1;
  }
  const shape = x.shape.map((_, i) => (i === dim ? length : 1));
  const mask = tensor(flags, { shape, device: x.device }).gt(0);
  return where(mask, source, x);
}
