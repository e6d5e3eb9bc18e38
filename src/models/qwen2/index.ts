/** Qwen2 / Qwen2.5: Llama skeleton with q/k/v biases; sliding windows only when use_sliding_window. */
import type { ModelFamily } from "../family.js";
import { commonSpec, layersFromTypes, qwenLayerTypes } from "../family.js";

export const qwen2: ModelFamily = {
  name: "qwen2",
  architectures: ["Qwen2ForCausalLM"],
  modelTypes: ["qwen2"],
  toSpec(config, file) {
    return { ...commonSpec(config, "qwen2", file), qkvBias: true, layers: layersFromTypes(config, qwenLayerTypes(config), file) };
  },
};
