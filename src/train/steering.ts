/**
 * Trained steering vectors: one vector v [d_model] at layer L, added as alpha * v at every position
 * of every sequence, either to the down_proj output (the study's site) or to the residual stream after
 * the layer. Only v trains. The hook is scoped: attach() returns a handle to remove it.
 */
import type { HookHandle } from "../hooks/registry.js";
import { layerPoint } from "../hooks/points.js";
import type { Decoder } from "../nn/decoder.js";
import { keep, type Tensor, zeros } from "../tensor/index.js";

export type SteeringSite = "down_proj" | "resid_post";

export class SteeringVector {
  /** Switched off inside `withoutSteering` (the KL reference). */
  private disabled = 0;

  constructor(
    readonly layer: number,
    readonly site: SteeringSite,
    readonly alpha: number,
    readonly vector: Tensor,
  ) {}

  /** A zero-initialised trainable vector for `decoder`. */
  static create(decoder: Decoder, layer: number, options: { site?: SteeringSite; alpha?: number } = {}): SteeringVector {
    if (!Number.isInteger(layer) || layer < 0 || layer >= decoder.numLayers) throw new RangeError(`steering layer ${layer} outside 0..${decoder.numLayers - 1}`);
    const v = keep(zeros([decoder.spec.hiddenSize], { device: decoder.device }).requiresGrad_());
    return new SteeringVector(layer, options.site ?? "down_proj", options.alpha ?? 1, v);
  }

  /** Adds alpha * v at the site in every forward pass until the handle is removed. */
  attach(decoder: Decoder): HookHandle {
    return decoder.hooks.add(layerPoint(this.layer, this.site), (x) => (this.disabled > 0 ? undefined : x.add(this.vector.to(x.dtype), this.alpha)));
  }

  withoutSteering<T>(fn: () => T): T {
    this.disabled++;
    try {
      return fn();
    } finally {
      this.disabled--;
    }
  }

  dispose(): void {
    this.vector.dispose();
  }
}
