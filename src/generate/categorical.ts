/**
 * One draw per row from softmax(scores): the native sampleCategorical (native/src/decode.cc), inverse
 * transform sampling with one uniform per row from libtorch's seeded generator and the running sum of
 * exp(score - max) in double. The distribution of softmax + multinomial, without multinomial's
 * exponential variate per vocabulary entry (the bulk of a sampling step's non-GEMM time).
 */
import { native } from "../native/addon.js";
import { Tensor } from "../tensor/index.js";
import { handleOf } from "../tensor/internal.js";

/** Token ids [...] (int64), one per row of `scores` [..., vocab]; -inf scores are never drawn. */
export function sampleCategorical(scores: Tensor): Tensor {
  return new Tensor(native.sampleCategorical(handleOf(scores)));
}
