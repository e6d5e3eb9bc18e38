/** Llama 3.x: no biases by default, llama3 RoPE frequency scaling (read from the config). */
import type { ModelFamily } from "../family.js";
import { commonSpec, layersFromTypes, layerTypes } from "../family.js";

export const llama: ModelFamily = {
  name: "llama",
  architectures: ["LlamaForCausalLM"],
  modelTypes: ["llama"],
  toSpec(config, file) {
    const types = layerTypes(config, () => "full_attention");
    return {
      ...commonSpec(config, "llama", file),
      qkvBias: config.attention_bias ?? false,
      oBias: config.attention_bias ?? false,
      mlpBias: config.mlp_bias ?? false,
      layers: layersFromTypes(config, types, file),
    };
  },
};
