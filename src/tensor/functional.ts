/**
 * Free-function ops over one or several tensors: joins, where, einsum, linear, losses, dropout,
 * embedding, layer norm and scaled dot-product attention (fused on libtorch >= 2.0, an exact
 * matmul/softmax fallback on 1.13). No model vocabulary here.
 */
import { native } from "../native/addon.js";
import { Tensor, type TensorLike } from "./tensor.js";
import { handleOf, handleOrNull } from "./internal.js";

export type Reduction = "none" | "mean" | "sum";
const reductionCode = (r: Reduction): number => (r === "none" ? 0 : r === "mean" ? 1 : 2);
const operand = (x: TensorLike) => (x instanceof Tensor ? handleOf(x) : x);

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(
    native.cat(
      tensors.map((t) => handleOf(t)),
      dim,
    ),
  );
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(
    native.stack(
      tensors.map((t) => handleOf(t)),
      dim,
    ),
  );
}
/** Elementwise `condition ? a : b` with broadcasting. */
export function where(condition: Tensor, a: TensorLike, b: TensorLike): Tensor {
  return new Tensor(native.where(handleOf(condition), operand(a), operand(b)));
}
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  return new Tensor(
    native.einsum(
      equation,
      operands.map((t) => handleOf(t)),
    ),
  );
}
/** x @ weight^T + bias, weight [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(native.linear(handleOf(x), handleOf(weight), handleOrNull(bias)));
}
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
  weight?: Tensor;
}
/** Cross-entropy of logits [N, C] (or [N, C, d...]) against class ids; ignored targets (-100) excluded. */
export function crossEntropy(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  return new Tensor(
    native.crossEntropy(
      handleOf(logits),
      handleOf(target),
      handleOrNull(options.weight),
      reductionCode(options.reduction ?? "mean"),
      options.ignoreIndex ?? -100,
      options.labelSmoothing ?? 0,
    ),
  );
}

/**
 * torch's kl_div: pointwise target * (log target - input) with `input` as log-probabilities
 * (and `target` as log-probabilities when logTarget). "batchmean" divides the sum by input.size(0).
 */
export function klDiv(input: Tensor, target: Tensor, options: { reduction?: Reduction | "batchmean"; logTarget?: boolean } = {}): Tensor {
  const reduction = options.reduction ?? "mean";
  const logTarget = options.logTarget ?? false;
  if (reduction === "batchmean") {
    const summed = new Tensor(native.klDiv(handleOf(input), handleOf(target), 2, logTarget));
    const out = summed.div(input.size(0));
    summed.dispose();
    return out;
  }
  return new Tensor(native.klDiv(handleOf(input), handleOf(target), reductionCode(reduction), logTarget));
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(native.mseLoss(handleOf(input), handleOf(target), reductionCode(reduction)));
}
/** Zeroes elements with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(x: Tensor, p: number, training = true): Tensor {
  return new Tensor(native.dropout(handleOf(x), p, training));
}
/** Rows of `weight` [vocab, d] picked by integer `ids`. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  return new Tensor(native.embedding(handleOf(weight), handleOf(ids)));
}
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  return new Tensor(native.layerNorm(handleOf(x), normalizedShape, handleOrNull(weight), handleOrNull(bias), eps));
}
export function softmax(x: Tensor, dim: number): Tensor {
  return x.softmax(dim);
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return x.logSoftmax(dim);
}

export interface AttentionOptions {
  /** Boolean (true = attend) or additive float mask, broadcastable to [batch, heads, q_pos, k_pos]. */
  mask?: Tensor | null;
  /** Causal masking (query i attends to keys <= i, aligned at the top-left like torch). */
  causal?: boolean;
  /** Defaults to 1/sqrt(d_head). */
  scale?: number;
  dropout?: number;
}
/**
 * softmax(q k^T * scale + mask) v for q [batch, heads, q_pos, d_head], k/v [batch, kv_heads, k_pos, d_head];
 * heads must be a multiple of kv_heads (grouped-query attention).
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  return new Tensor(
    native.attention(
      handleOf(q),
      handleOf(k),
      handleOf(v),
      handleOrNull(options.mask),
      options.causal ?? false,
      options.scale ?? null,
      options.dropout ?? 0,
    ),
  );
}
