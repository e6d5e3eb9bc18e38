/**
 * What the decoder routes its linear projections through. The decoder is given one at construction:
 * the models layer passes an adapter set (src/adapters/adapter-set.ts) so LoRA can add to any module;
 * without one every projection is a plain linear. nn/ knows only this contract, not adapters.
 */
import { linear, type Tensor } from "../tensor/index.js";

export interface ProjectionSource {
  /** False when every projection is currently a plain linear (the decoder then skips the lookup). */
  readonly active: boolean;
  /**
   * x W^T + b for the module named `module` (model.layers.{l}.self_attn.q_proj ...), plus whatever the
   * source adds. `base` computes the x W^T + b part (the decoder passes its decode-step product while
   * decoding); default: linear.
   */
  linear(module: string, x: Tensor, weight: Tensor, bias: Tensor | null, base?: BaseProduct): Tensor;
}

/** x W^T + b, however computed (linear, or the decode-step product). */
export type BaseProduct = (x: Tensor, weight: Tensor, bias: Tensor | null) => Tensor;

/** Plain linear projections: no module is ever altered. */
export const plainProjections: ProjectionSource = {
  active: false,
  linear: (_module, x, weight, bias, base = linear) => base(x, weight, bias),
};
