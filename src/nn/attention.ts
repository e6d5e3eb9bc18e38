/**
 * Grouped-query self-attention of one decoder layer: projections (optional biases), optional q/k
 * RMSNorm, RoPE, KV cache, then scaled dot-product attention (the fused kernel) or, with logit
 * soft-capping (Gemma 2), the explicit softmax(cap * tanh(q k^T * scale / cap) + mask) v in float32.
 */
import { linear, scaledDotProductAttention, type Tensor } from "../tensor/index.js";

/** A linear projection by module kind; adapters hook in here (default: plain linear). */
export type Projection = (kind: "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj", x: Tensor, weight: Tensor, bias: Tensor | null) => Tensor;
export const plainProjection: Projection = (_kind, x, weight, bias) => linear(x, weight, bias);
import type { KvCache } from "./kv-cache.js";
import { type NormStyle, rmsNorm } from "./rms-norm.js";
import { applyRope } from "./rope.js";

export interface AttentionWeights {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  oBias: Tensor | null;
  qNorm: Tensor | null;
  kNorm: Tensor | null;
}

export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  scale: number;
  softcap: number | null;
  normEps: number;
  normStyle: NormStyle;
}

/** x [batch, pos, d_model] -> o_proj output [batch, pos, d_model]. `mask` is additive [batch, 1, pos, keys]. */
export function selfAttention(
  x: Tensor,
  w: AttentionWeights,
  shape: AttentionShape,
  rope: { cos: Tensor; sin: Tensor },
  mask: Tensor,
  cache: { cache: KvCache; layer: number } | null,
  project: Projection = plainProjection,
): Tensor {
  const [batch, pos] = x.shape as [number, number, number];
  const { numHeads, numKvHeads, headDim } = shape;
  // [batch, pos, heads * d_head] -> [batch, heads, pos, d_head]
  let q = project("q_proj", x, w.q, w.qBias).view(batch, pos, numHeads, headDim);
  let k = project("k_proj", x, w.k, w.kBias).view(batch, pos, numKvHeads, headDim);
  const v0 = project("v_proj", x, w.v, w.vBias).view(batch, pos, numKvHeads, headDim).transpose(1, 2);
  if (w.qNorm && w.kNorm) {
    q = rmsNorm(q, w.qNorm, shape.normEps, shape.normStyle);
    k = rmsNorm(k, w.kNorm, shape.normEps, shape.normStyle);
  }
  q = applyRope(q.transpose(1, 2), rope.cos, rope.sin);
  let keys = applyRope(k.transpose(1, 2), rope.cos, rope.sin);
  let values = v0;
  if (cache) ({ k: keys, v: values } = cache.cache.append(cache.layer, keys, values));
  let out: Tensor;
  if (shape.softcap === null) {
    out = scaledDotProductAttention(q, keys, values, { mask, scale: shape.scale });
  } else {
    const groups = numHeads / numKvHeads;
    const kFull = groups === 1 ? keys : keys.repeatInterleave(groups, 1);
    const vFull = groups === 1 ? values : values.repeatInterleave(groups, 1);
    const cap = shape.softcap;
    const scores = q.matmul(kFull.mT).mul(shape.scale).div(cap).tanh().mul(cap).add(mask);
    out = scores.to("f32").softmax(-1).to(q.dtype).matmul(vFull);
  }
  // [batch, heads, pos, d_head] -> [batch, pos, heads * d_head]
  return project("o_proj", out.transpose(1, 2).reshape(batch, pos, numHeads * headDim), w.o, w.oBias);
}
