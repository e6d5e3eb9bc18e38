/**
 * The gradient snapshot a checkpoint keeps for the gradient analyses: a copy of each trainable's
 * accumulated gradient taken before clipping (clipping scales the gradients in place; the study saved
 * the unclipped accumulated gradient, protocol.md §7.9).
 */
import { keep, type Tensor, tidy } from "../tensor/index.js";

/** Copies (not views) of the current gradients, by name; trainables without a gradient are left out. */
export function snapshotGradients(trainables: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, p] of trainables) {
    const copy = tidy(() => {
      const g = p.grad;
      return g === null ? null : keep(g.clone());
    });
    if (copy) out.set(name, copy);
  }
  return out;
}
