/**
 * The tensor hot path inside an Effect program: one `step` is one synchronous `tidy` (no Effect per
 * op). A libtorch error raised by an op inside the step (out of memory, invalid argument, ...) becomes
 * a typed failure, so `Effect.catchTag("OutOfMemoryError", ...)` works in `Effect.gen`; any other
 * throw stays a defect. Intermediates are freed when the step ends, also on failure.
 */
import { Effect, type Scope } from "effect";
import { isTorchError, type TorchError } from "../tensor/errors.js";
import { keep, tidy } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

/**
 * Runs `f` as one step. Return plain values (a loss as a number, token ids); tensors returned are
 * handed to the caller as `tidy` does outside a scope (see `scopedStep` to tie them to a Scope).
 */
export function step<A>(f: () => A): Effect.Effect<A, TorchError> {
  return Effect.suspend(() => {
    try {
      return Effect.succeed(tidy(f));
    } catch (error) {
      return isTorchError(error) ? Effect.fail(error) : Effect.die(error);
    }
  });
}

/** Like `step` for a step that makes one tensor: it lives until the enclosing Scope closes. */
export function scopedStep(f: () => Tensor): Effect.Effect<Tensor, TorchError, Scope.Scope> {
  return Effect.acquireRelease(
    step(() => keep(f())),
    (tensor) => Effect.sync(() => tensor.dispose()),
  );
}
