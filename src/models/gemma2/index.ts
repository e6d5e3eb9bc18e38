/**
 * Gemma 2: (1+w) RMSNorm, sqrt(d_model) embedding scale, sandwich norms, attention and final logit
 * soft-capping, sliding window on alternate layers (even ones), GELU-tanh, query_pre_attn_scalar.
 */
import type { ModelFamily } from "../family.js";
import { commonSpec, layersFromTypes, layerTypes } from "../family.js";

export const gemma2: ModelFamily = {
  name: "gemma2",
  architectures: ["Gemma2ForCausalLM"],
  modelTypes: ["gemma2"],
  toSpec(config, file) {
    const base = commonSpec(config, "gemma2");
    const types = layerTypes(config, (i) => (i % 2 === 0 ? "sliding_attention" : "full_attention"));
    return {
      ...base,
      normStyle: "oneplus",
      sandwichNorms: true,
      embeddingScale: Math.sqrt(config.hidden_size),
      activation: "gelu_tanh",
      attentionScale: 1 / Math.sqrt(config.query_pre_attn_scalar ?? base.headDim),
      attnSoftcap: config.attn_logit_softcapping ?? null,
      finalSoftcap: config.final_logit_softcapping ?? null,
      tieEmbeddings: config.tie_word_embeddings ?? true,
      layers: layersFromTypes(config, types, file),
    };
  },
};
