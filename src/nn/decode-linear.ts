/**
 * The linear projection of incremental decoding steps (a handful of rows per call): the native
 * decodeLinear (native/src/decode.cc) computes linear(x, weight, bias) as (weight @ x^T)^T where that
 * was measured faster on pip libtorch 2.x, else as plain linear. Equal to linear up to float summation
 * order; used only for decode steps and last-position logits.
 */
import { native } from "../native/addon.js";
import { Tensor } from "../tensor/index.js";
import type { Projection } from "./attention.js";
import { handleOf, handleOrNull } from "../tensor/internal.js";

export function decodeLinear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return new Tensor(native.decodeLinear(handleOf(x), handleOf(weight), handleOrNull(bias)));
}

/** The plain (adapter-free) projection of a decode step. */
export const decodeProjection: Projection = (_kind, x, weight, bias) => decodeLinear(x, weight, bias);
