/** Gated MLP: down(act(gate(x)) * up(x)) with SiLU (Llama, Qwen) or GELU-tanh (Gemma); an optional tap runs the mlp.* hook points. */
import type { MlpPoint } from "../hooks/points.js";
import type { Tensor } from "../tensor/index.js";
import { plainProjection, type Projection } from "./attention.js";

export interface MlpWeights {
  gate: Tensor;
  up: Tensor;
  down: Tensor;
  gateBias: Tensor | null;
  upBias: Tensor | null;
  downBias: Tensor | null;
}

/** The input of down_proj: act(gate(x)) * up(x). */
export function gatedActivation(
  x: Tensor,
  w: MlpWeights,
  activation: "silu" | "gelu_tanh",
  project: Projection = plainProjection,
  tap: ((point: MlpPoint, x: Tensor) => Tensor) | null = null,
): Tensor {
  if (tap === null) {
    const gate = project("gate_proj", x, w.gate, w.gateBias);
    const activated = activation === "silu" ? gate.silu() : gate.gelu("tanh");
    return activated.mul(project("up_proj", x, w.up, w.upBias));
  }
  const gate = tap("mlp.gate", project("gate_proj", x, w.gate, w.gateBias));
  const up = tap("mlp.up", project("up_proj", x, w.up, w.upBias));
  return tap("mlp.hidden", (activation === "silu" ? gate.silu() : gate.gelu("tanh")).mul(up));
}

export function downProjection(h: Tensor, w: MlpWeights, project: Projection = plainProjection): Tensor {
  return project("down_proj", h, w.down, w.downBias);
}
