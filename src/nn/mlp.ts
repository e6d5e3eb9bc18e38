/** Gated MLP: down(act(gate(x)) * up(x)) with SiLU (Llama, Qwen) or GELU-tanh (Gemma). */
import { linear, type Tensor } from "../tensor/index.js";

export interface MlpWeights {
  gate: Tensor;
  up: Tensor;
  down: Tensor;
  gateBias: Tensor | null;
  upBias: Tensor | null;
  downBias: Tensor | null;
}

/** The input of down_proj: act(gate(x)) * up(x). */
export function gatedActivation(x: Tensor, w: MlpWeights, activation: "silu" | "gelu_tanh"): Tensor {
  const gate = linear(x, w.gate, w.gateBias);
  const activated = activation === "silu" ? gate.silu() : gate.gelu("tanh");
  return activated.mul(linear(x, w.up, w.upBias));
}

export function downProjection(h: Tensor, w: MlpWeights): Tensor {
  return linear(h, w.down, w.downBias);
}
