/**
 * Gemma 2: (1+w) RMSNorm, sqrt(d_model) embedding scale, sandwich norms, attention and final logit
 * soft-capping, sliding window on alternate layers (even ones), GELU-tanh, query_pre_attn_scalar.
 */
import type { ModelFamily } from "../family.js";
import { gemmaSpec, layerTypes } from "../family.js";

export const gemma2: ModelFamily = {
  name: "gemma2",
  architectures: ["Gemma2ForCausalLM"],
  modelTypes: ["gemma2"],
  toSpec(config, file) {
    const types = layerTypes(config, (i) => (i % 2 === 0 ? "sliding_attention" : "full_attention"));
    return gemmaSpec(config, "gemma2", types, file);
  },
};
