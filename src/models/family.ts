/**
 * The contract of a model family folder, and the config fields all families read the same way.
 */
import { checkActivation } from "./config-checks.js";
import type { HfConfig } from "./hf-config.js";
import { ropeForLayerType, tokenIds } from "./hf-config.js";
import type { LayerSpec } from "../nn/spec.js";
import type { FamilyName, ModelSpec } from "./spec.js";

export interface ModelFamily {
  readonly name: FamilyName;
  /** `architectures[0]` values of config.json this family loads. */
  readonly architectures: readonly string[];
  /** `model_type` values, used when `architectures` is absent. */
  readonly modelTypes: readonly string[];
  /** Turns a config.json into the decoder description. */
  toSpec(config: HfConfig, file: string): ModelSpec;
}

export type LayerType = "full_attention" | "sliding_attention";

/** Layer specs from per-layer types: sliding layers get the config's window. */
export function layersFromTypes(config: HfConfig, types: readonly string[], file: string): LayerSpec[] {
  return types.map((type) => ({
    slidingWindow: type === "sliding_attention" ? (config.sliding_window ?? null) : null,
    rope: ropeForLayerType(config, type, file),
  }));
}

/** Activation names meaning SiLU in transformers (ACT2FN), the only one Llama and Qwen run here. */
export const SILU_NAMES = ["silu", "swish"] as const;
/** Gemma 2/3 run GELU with the tanh approximation (`hidden_activation`). */
export const GELU_TANH_NAMES = ["gelu_pytorch_tanh"] as const;

/**
 * Fields whose defaults are common to every family (overridden per family as needed). The SiLU
 * families' `hidden_act` is checked here (Gemma's activation in gemmaSpec).
 */
export function commonSpec(config: HfConfig, family: FamilyName, file: string): Omit<ModelSpec, "layers"> {
  if (family !== "gemma2" && family !== "gemma3") checkActivation(config, file, SILU_NAMES, ["hidden_act"]);
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  return {
    family,
    vocabSize: config.vocab_size,
    hiddenSize: config.hidden_size,
    intermediateSize: config.intermediate_size,
    numHeads: config.num_attention_heads,
    numKvHeads: config.num_key_value_heads ?? config.num_attention_heads,
    headDim,
    rmsNormEps: config.rms_norm_eps ?? 1e-6,
    maxPositions: config.max_position_embeddings ?? null,
    normStyle: "weight",
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    qkNorm: false,
    sandwichNorms: false,
    embeddingScale: null,
    activation: "silu",
    attentionScale: 1 / Math.sqrt(headDim),
    attnSoftcap: null,
    finalSoftcap: null,
    tieEmbeddings: config.tie_word_embeddings ?? false,
    bosTokenId: tokenIds(config.bos_token_id)[0] ?? null,
    eosTokenIds: tokenIds(config.eos_token_id),
    padTokenId: tokenIds(config.pad_token_id)[0] ?? null,
  };
}

/** `layer_types` when the config lists them (transformers >= 4.5x; their count is checked on reading), else `fallback(i)`. */
export function layerTypes(config: HfConfig, fallback: (layer: number) => LayerType): string[] {
  if (config.layer_types) return [...config.layer_types];
  return Array.from({ length: config.num_hidden_layers }, (_, i) => fallback(i));
}

/** Qwen's layer types: sliding windows only when use_sliding_window, from max_window_layers on. */
export function qwenLayerTypes(config: HfConfig): string[] {
  return layerTypes(config, (i) =>
    config.use_sliding_window && i >= (config.max_window_layers ?? 0) ? "sliding_attention" : "full_attention",
  );
}

/**
 * The conventions Gemma 2 and 3 share: (1+w) RMSNorm, sandwich norms, sqrt(d_model) embedding scale,
 * GELU-tanh, query_pre_attn_scalar, soft-capping as configured, tied embeddings by default.
 */
export function gemmaSpec(config: HfConfig, family: FamilyName, types: readonly string[], file: string): ModelSpec {
  checkActivation(config, file, GELU_TANH_NAMES, ["hidden_activation", "hidden_act"]);
  const base = commonSpec(config, family, file);
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
}
