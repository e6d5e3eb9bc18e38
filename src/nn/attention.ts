/**
 * Grouped-query self-attention of one decoder layer: projections (optional biases), optional q/k
 * RMSNorm, RoPE, KV cache, then scaled dot-product attention (the fused kernel) or, with logit
 * soft-capping (Gemma 2) or when a hook needs the scores / pattern, the explicit
 * softmax(cap * tanh(q k^T * scale / cap) + mask) v (softmax in float32). An optional tap runs the
 * per-head hook points (src/hooks/points.ts); without one nothing extra is computed.
 */
import type { AttentionPoint } from "../hooks/points.js";
import { linear, scaledDotProductAttention, type Tensor } from "../tensor/index.js";
import type { LinearKind } from "./linear-modules.js";

/** A linear projection by module kind; adapters hook in here (default: plain linear). */
export type Projection = (kind: LinearKind, x: Tensor, weight: Tensor, bias: Tensor | null) => Tensor;
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

/** Runs the attention hook points of one layer; `explicit` forms scores and pattern (a hook needs them). */
export interface AttentionTap {
  run(point: AttentionPoint, x: Tensor): Tensor;
  readonly explicit: boolean;
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
  tap: AttentionTap | null = null,
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
  if (tap) {
    q = tap.run("attn.q", q);
    keys = tap.run("attn.k", keys);
    values = tap.run("attn.v", values);
  }
  if (cache) ({ k: keys, v: values } = cache.cache.append(cache.layer, keys, values));
  let out: Tensor;
  if (shape.softcap === null && !tap?.explicit) {
    out = scaledDotProductAttention(q, keys, values, { mask, scale: shape.scale });
  } else {
    const groups = numHeads / numKvHeads;
    const kFull = groups === 1 ? keys : keys.repeatInterleave(groups, 1);
    const vFull = groups === 1 ? values : values.repeatInterleave(groups, 1);
    const cap = shape.softcap;
    let scores = q.matmul(kFull.mT).mul(shape.scale);
    if (cap !== null) scores = scores.div(cap).tanh().mul(cap);
    scores = scores.add(mask);
    if (tap) scores = tap.run("attn.scores", scores);
    let pattern = scores.to("f32").softmax(-1).to(q.dtype);
    if (tap) pattern = tap.run("attn.pattern", pattern);
    out = pattern.matmul(vFull);
  }
  // [batch, heads, pos, d_head] -> [batch, pos, heads, d_head] -> [batch, pos, heads * d_head]
  let z = out.transpose(1, 2);
  if (tap) z = tap.run("attn.z", z);
  return project("o_proj", z.reshape(batch, pos, numHeads * headDim), w.o, w.oBias);
}
