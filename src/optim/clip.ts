/** Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_ semantics). */
import { native } from "../native/addon.js";
import type { Tensor } from "../tensor/index.js";
import { handleOf } from "../tensor/internal.js";

/** Scales all gradients so their global p-norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, normType = 2): number {
  return native.clipGradNorm(
    params.map((p) => handleOf(p)),
    maxNorm,
    normType,
  );
}
