/**
 * Module-internal access to a Tensor's private state (its native handle and lifetime flags, which are
 * `#private` fields of the class). The Tensor class installs these accessors once when tensor.ts is
 * evaluated; the tensor layer, optimizers, safetensors and the few native fast paths outside tensor/
 * read the handle through `handleOf`. Not part of emlab's public API (src/api/*, src/index.ts).
 */
import type { Handle } from "../native/addon.js";
import type { Tensor } from "./tensor.js";

/** What tensor.ts hands over from inside the class body (the only code that can touch `#` fields). */
export interface TensorInternals {
  handleOf(tensor: Tensor): Handle;
  isTensor(value: unknown): value is Tensor;
  isKept(tensor: Tensor): boolean;
  markKept(tensor: Tensor): void;
  isReleased(tensor: Tensor): boolean;
  adoptByGc(tensor: Tensor): void;
}

const notInstalled = (): never => {
  throw new Error("emlab: tensor internals used before tensor.ts was loaded");
};

/** The native handle of a tensor (replaced, never reused, when it gets a GC finalizer). */
export let handleOf: (tensor: Tensor) => Handle = notInstalled;
/** True for Tensor instances (a brand check on the private handle field, not a duck type). */
export let isTensor: (value: unknown) => value is Tensor = notInstalled as never;
/** Set by `keep()`: no scope disposes the tensor. */
export let isKept: (tensor: Tensor) => boolean = notInstalled;
export let markKept: (tensor: Tensor) => void = notInstalled;
/** True once dispose() was called (a JS-side mirror, no native call). */
export let isReleased: (tensor: Tensor) => boolean = notInstalled;
/** Gives the tensor a GC finalizer (called when no scope owns it any more). */
export let adoptByGc: (tensor: Tensor) => void = notInstalled;

let installed = false;

/** Called once, from the Tensor class's static block. */
export function installTensorInternals(internals: TensorInternals): void {
  if (installed) throw new Error("emlab: tensor internals are installed once");
  installed = true;
  ({ handleOf, isTensor, isKept, markKept, isReleased, adoptByGc } = internals);
}

/** The handle of an optional tensor argument, or null. */
export function handleOrNull(tensor: Tensor | null | undefined): Handle | null {
  return tensor == null ? null : handleOf(tensor);
}
