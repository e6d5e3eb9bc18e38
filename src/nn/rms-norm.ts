/**
 * RMS normalisation as Hugging Face computes it: in float32, then cast back to the input dtype.
 * "weight" style (Llama, Qwen): cast, then multiply by w. "oneplus" style (Gemma): multiply by
 * (1 + w) in float32, then cast.
 */
import { type Tensor, tidy } from "../tensor/index.js";

export type NormStyle = "weight" | "oneplus";

/** x [..., d] normalised over the last dim with weight [d]. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number, style: NormStyle): Tensor {
  return tidy(() => {
    const dtype = x.dtype;
    const x32 = dtype === "f32" ? x : x.to("f32");
    const normed = x32.mul(x32.square().mean(-1, true).add(eps).rsqrt());
    if (style === "oneplus") {
      const scaled = normed.mul(weight.to("f32").add(1));
      return dtype === "f32" ? scaled : scaled.to(dtype);
    }
    return (dtype === "f32" ? normed : normed.to(dtype)).mul(weight);
  });
}
