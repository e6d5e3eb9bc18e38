/**
 * Grad-mode scopes and functional gradients: noGrad / enableGrad / inferenceMode run a synchronous
 * function with autograd switched accordingly (restored on exit, also on throw); `grad` computes
 * d(outputs)/d(inputs) without touching `.grad`.
 */
import { native } from "../native/addon.js";
import { Tensor } from "./tensor.js";
import { handleOf, handleOrNull } from "./internal.js";

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` with gradient recording off. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}
/** Runs `fn` with gradient recording on (inside a noGrad region). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}
export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
/** Runs `fn` in libtorch's inference mode (faster than noGrad; its tensors can never join autograd). */
export function inferenceMode<T>(fn: () => T): T {
  const depth = native.enterInferenceMode();
  try {
    return fn();
  } finally {
    native.exitInferenceMode(depth);
  }
}
export function isInferenceMode(): boolean {
  return native.isInferenceMode();
}

export interface GradOptions {
  /** Seeds for non-scalar outputs (like torch's grad_outputs). */
  gradOutputs?: readonly (Tensor | null)[];
  retainGraph?: boolean;
  /** Record the gradient computation itself (for higher-order gradients). */
  createGraph?: boolean;
  /** Return null for inputs the outputs do not depend on, instead of throwing. */
  allowUnused?: boolean;
}

/** Gradients of `outputs` with respect to `inputs` (torch.autograd.grad). */
export function grad(outputs: Tensor | readonly Tensor[], inputs: readonly Tensor[], options: GradOptions = {}): (Tensor | null)[] {
  const outs = outputs instanceof Tensor ? [outputs] : outputs;
  const handles = native.autogradGrad(
    outs.map((t) => handleOf(t)),
    inputs.map((t) => handleOf(t)),
    options.gradOutputs ? options.gradOutputs.map((t) => handleOrNull(t)) : null,
    options.retainGraph ?? null,
    options.createGraph ?? false,
    options.allowUnused ?? false,
  );
  return handles.map((h) => (h === null ? null : new Tensor(h)));
}
