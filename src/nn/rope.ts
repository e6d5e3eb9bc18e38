/**
 * Rotary position embeddings: inverse frequencies for the RoPE variants the supported families use
 * (default, linear, llama3), cos/sin tables for given positions, and rotate-half application.
 * Computed in float32 with tensor ops, mirroring Hugging Face's arithmetic.
 */
import { arange, cat, type Tensor, tensor, tidy, where } from "../tensor/index.js";

export interface RopeSpec {
  theta: number;
  type: "default" | "linear" | "llama3";
  /** linear and llama3 */
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

/** inv_freq [d_head / 2] in float32 on `device`. */
export function inverseFrequencies(spec: RopeSpec, headDim: number, device: Tensor["device"]): Tensor {
  return tidy(() => {
    const exponents = arange(0, headDim, 2, { device }).to("f32").div(headDim);
    const base = tensor(spec.theta, { dtype: "f32", device }).pow(exponents).reciprocal();
    if (spec.type === "default") return base;
    if (spec.type === "linear") return base.div(spec.factor ?? 1);
    // llama3: long wavelengths are divided by `factor`, short ones kept, the band between smoothed.
    const factor = spec.factor ?? 8;
    const low = spec.lowFreqFactor ?? 1;
    const high = spec.highFreqFactor ?? 4;
    const context = spec.originalMaxPositions ?? 8192;
    const lowWavelength = context / low;
    const highWavelength = context / high;
    const wavelength = base.rdiv(2 * Math.PI);
    const scaled = base.div(factor);
    let inv = where(wavelength.gt(lowWavelength), scaled, base);
    const smooth = wavelength
      .rdiv(context)
      .sub(low)
      .div(high - low);
    const smoothed = smooth.rsub(1).mul(inv).div(factor).add(smooth.mul(inv));
    const medium = wavelength.lt(highWavelength).logicalNot().logicalAnd(wavelength.gt(lowWavelength).logicalNot());
    inv = where(medium, smoothed, inv);
    return inv;
  });
}

/** cos and sin [batch, pos, d_head] (float32) for integer positions [batch, pos]. */
export function ropeTables(invFreq: Tensor, positions: Tensor): { cos: Tensor; sin: Tensor } {
  return tidy(() => {
    // [batch, pos, 1] * [d_head/2] -> [batch, pos, d_head/2], then duplicated to d_head.
    const freqs = positions.to("f32").unsqueeze(-1).mul(invFreq);
    const emb = cat([freqs, freqs], -1);
    return { cos: emb.cos(), sin: emb.sin() };
  });
}

/** x [batch, heads, pos, d_head] rotated by cos/sin [batch, pos, d_head]: x*cos + rotate_half(x)*sin. */
export function applyRope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return tidy(() => {
    const half = x.size(-1) / 2;
    const [x1, x2] = x.split(half, -1) as [Tensor, Tensor];
    const rotated = cat([x2.neg(), x1], -1);
    const c = cos.unsqueeze(1).to(x.dtype);
    const s = sin.unsqueeze(1).to(x.dtype);
    return x.mul(c).add(rotated.mul(s));
  });
}
