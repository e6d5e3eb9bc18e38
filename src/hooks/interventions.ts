/**
 * Ready-made hooks: capture an activation (or its gradient), add a vector, project a direction out.
 * Captured tensors are kept (they outlive the forward's scopes): the caller disposes them.
 */
import { keep, noGrad, type Tensor, tidy } from "../tensor/index.js";
import type { HookFn } from "./registry.js";

/** Stores a detached copy of each activation seen (one entry per forward call). */
export function captureHook(into: Tensor[]): HookFn {
  return (x) => {
    into.push(keep(noGrad(() => x.detach().clone())));
  };
}

/**
 * Keeps the activation with retain_grad, so `.grad` is readable after backward (run the forward with
 * grad enabled). On a frozen model, where the activation is not in the autograd graph, a leaf equal to
 * it takes its place (nothing upstream needs a gradient then), so `.grad` works there too.
 */
export function gradientHook(into: Tensor[]): HookFn {
  return (x) => {
    if (x.requiresGrad) {
      x.retainGrad();
      into.push(keep(x.share()));
      return;
    }
    const leaf = keep(x.detach().requiresGrad_());
    into.push(leaf);
    return leaf.share();
  };
}

/** Adds scale * vector (broadcast over batch and positions) to the activation. */
export function addHook(vector: Tensor, scale = 1): HookFn {
  return (x) => x.add(vector.to(x.dtype), scale);
}

/** Removes the component along `direction`: x - (x . d_hat) d_hat. */
export function projectOutHook(direction: Tensor): HookFn {
  return (x) =>
    tidy(() => {
      const unit = direction.to(x.dtype).div(direction.norm().to(x.dtype));
      const coefficient = x.matmul(unit.unsqueeze(-1)); // [..., 1]
      return x.sub(coefficient.mul(unit));
    });
}
