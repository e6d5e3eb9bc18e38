/** Qwen3: Qwen2 without q/k/v biases (unless attention_bias) and with RMSNorm on q and k per head. */
import type { ModelFamily } from "../family.js";
import { commonSpec, layersFromTypes, qwenLayerTypes } from "../family.js";

export const qwen3: ModelFamily = {
  name: "qwen3",
  architectures: ["Qwen3ForCausalLM"],
  modelTypes: ["qwen3"],
  toSpec(config, file) {
    return {
      ...commonSpec(config, "qwen3", file),
      qkvBias: config.attention_bias ?? false,
      oBias: config.attention_bias ?? false,
      qkNorm: true,
      layers: layersFromTypes(config, qwenLayerTypes(config), file),
    };
  },
};
