/**
 * Gemma 3 (text): Gemma 2's conventions plus (1+w) RMSNorm on q and k; sliding (local) and full
 * (global) layers with their own RoPE bases and scaling; no soft-capping unless configured.
 * Multimodal checkpoints load through their text_config and `language_model` weights.
 */
import type { ModelFamily } from "../family.js";
import { gemmaSpec, layerTypes } from "../family.js";

export const gemma3: ModelFamily = {
  name: "gemma3",
  architectures: ["Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"],
  modelTypes: ["gemma3_text", "gemma3"],
  toSpec(config, file) {
    const pattern = config.sliding_window_pattern ?? config._sliding_window_pattern ?? 6;
    const types = layerTypes(config, (i) => ((i + 1) % pattern === 0 ? "full_attention" : "sliding_attention"));
    return { ...gemmaSpec(config, "gemma3", types, file), qkNorm: true };
  },
};
