/**
 * Trained steering vectors: one vector v [d_model] at layer L, added as alpha * v at every position
 * of every sequence ("all" rows), either to the down_proj output (the study's site) or to the residual
 * stream after the layer. With rows "first" only batch row 0 is steered, which is what the released
 * trainer's hook (`output[0] = output[0] + alpha*v` on a [B, T, d] tensor) did (protocol.md §7.4).
 * Only v trains. The hook is scoped: attach() returns a handle to remove it.
 */
import type { HookHandle } from "../hooks/registry.js";
import { layerPoint } from "../hooks/points.js";
import type { Decoder } from "../nn/decoder.js";
import { cat, keep, type Tensor, zeros } from "../tensor/index.js";
import { RunInputError } from "./inputs.js";

export type SteeringSite = "down_proj" | "resid_post";
/** Which rows of a batch are steered: all of them (emlab), or only row 0 (the released training code). */
export type SteeringRows = "all" | "first";

export class SteeringVector {
  /** Switched off inside `withoutSteering` (the KL reference). */
  private disabled = 0;

  constructor(
    readonly layer: number,
    readonly site: SteeringSite,
    readonly alpha: number,
    readonly vector: Tensor,
    readonly rows: SteeringRows = "all",
  ) {}

  /**
   * A zero-initialised trainable vector for `decoder`. A layer outside 0..L-1 is a RunInputError on the
   * field `steering.layer` (`source`, e.g. the model directory, is named as its file).
   */
  static create(
    decoder: Decoder,
    layer: number,
    options: { site?: SteeringSite; alpha?: number; rows?: SteeringRows; source?: string } = {},
  ): SteeringVector {
    if (!Number.isInteger(layer) || layer < 0 || layer >= decoder.numLayers) {
      const model = options.source ?? "the model";
      throw new RunInputError({
        field: "steering.layer",
        file: options.source ?? "",
        message: `steering.layer: ${layer} is not a layer of ${model} (it has layers 0..${decoder.numLayers - 1})`,
      });
    }
    const v = keep(zeros([decoder.spec.hiddenSize], { device: decoder.device }).requiresGrad_());
    return new SteeringVector(layer, options.site ?? "down_proj", options.alpha ?? 1, v, options.rows ?? "all");
  }

  /** Adds alpha * v at the site in every forward pass until the handle is removed. */
  attach(decoder: Decoder): HookHandle {
    return decoder.hooks.add(layerPoint(this.layer, this.site), (x) => {
      if (this.disabled > 0) return undefined;
      if (this.rows === "all" || x.size(0) === 1) return x.add(this.vector.to(x.dtype), this.alpha);
      const first = x.narrow(0, 0, 1).add(this.vector.to(x.dtype), this.alpha);
      return cat([first, x.narrow(0, 1, x.size(0) - 1)], 0);
    });
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
  /** Same as dispose(), for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
