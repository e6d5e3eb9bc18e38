/**
 * Random small model configurations of the five families for the live parity property test, drawn
 * with fast-check from a seed: GQA ratios, head_dim != hidden/heads, sliding windows, the RoPE
 * scalings the families use (default, linear, llama3), tied and untied embeddings, biases,
 * soft-capping. Each value is a transformers-5 config.json (rope settings in rope_parameters).
 */
import fc from "fast-check";

export const FAMILIES = ["qwen2", "qwen3", "llama", "gemma2", "gemma3"] as const;
export type PeerFamily = (typeof FAMILIES)[number];

const shape = fc.record({
  kvHeads: fc.constantFrom(1, 2, 4),
  groups: fc.constantFrom(1, 2, 4),
  headDim: fc.constantFrom(8, 16, 24),
  hidden: fc.constantFrom(32, 48, 64),
  intermediate: fc.constantFrom(48, 96),
  layers: fc.constantFrom(2, 3),
  vocab: fc.constantFrom(256, 384),
  tie: fc.boolean(),
});

const theta = fc.constantFrom(10000, 500000, 1000000);
const linearRope = fc.record({ rope_type: fc.constant("linear"), factor: fc.constantFrom(2, 4, 8), rope_theta: theta });
const llama3Rope = fc.record({
  rope_type: fc.constant("llama3"),
  factor: fc.constantFrom(8, 32),
  low_freq_factor: fc.constantFrom(1, 2),
  high_freq_factor: fc.constantFrom(4, 8),
  original_max_position_embeddings: fc.constantFrom(8, 64),
  rope_theta: theta,
});
const defaultRope = fc.record({ rope_type: fc.constant("default"), rope_theta: theta });

interface Shape {
  kvHeads: number;
  groups: number;
  headDim: number;
  hidden: number;
  intermediate: number;
  layers: number;
  vocab: number;
  tie: boolean;
}

function base(s: Shape) {
  return {
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.kvHeads * s.groups,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: s.tie,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

const window = fc.constantFrom(3, 5, 8);

export const familyConfig: Record<PeerFamily, fc.Arbitrary<Record<string, unknown>>> = {
  qwen2: fc
    .record({ s: shape, rope: defaultRope, sliding: fc.boolean(), window, maxWindowLayers: fc.constantFrom(0, 1) })
    .map(({ s, rope, sliding, window, maxWindowLayers }) => ({
      model_type: "qwen2",
      ...base(s),
      rope_parameters: rope,
      use_sliding_window: sliding,
      sliding_window: sliding ? window : null,
      max_window_layers: maxWindowLayers,
      layer_types: Array.from({ length: s.layers }, (_, i) => (sliding && i >= maxWindowLayers ? "sliding_attention" : "full_attention")),
    })),
  qwen3: fc
    .record({ s: shape, rope: defaultRope, bias: fc.boolean(), sliding: fc.boolean(), window })
    .map(({ s, rope, bias, sliding, window }) => ({
      model_type: "qwen3",
      ...base(s),
      rope_parameters: rope,
      attention_bias: bias,
      use_sliding_window: sliding,
      sliding_window: sliding ? window : null,
      max_window_layers: 0,
      layer_types: Array.from({ length: s.layers }, () => (sliding ? "sliding_attention" : "full_attention")),
    })),
  llama: fc
    .record({ s: shape, rope: fc.oneof(defaultRope, linearRope, llama3Rope), attnBias: fc.boolean(), mlpBias: fc.boolean() })
    .map(({ s, rope, attnBias, mlpBias }) => ({
      model_type: "llama",
      ...base(s),
      rope_parameters: rope,
      attention_bias: attnBias,
      mlp_bias: mlpBias,
    })),
  gemma2: fc
    .record({
      s: shape,
      theta,
      window,
      attnCap: fc.constantFrom(null, 20, 50),
      finalCap: fc.constantFrom(null, 5, 30),
      scalar: fc.constantFrom(8, 16, 32),
    })
    .map(({ s, theta, window, attnCap, finalCap, scalar }) => ({
      model_type: "gemma2",
      ...base(s),
      rope_parameters: { rope_type: "default", rope_theta: theta },
      sliding_window: window,
      attn_logit_softcapping: attnCap,
      final_logit_softcapping: finalCap,
      query_pre_attn_scalar: scalar,
      hidden_activation: "gelu_pytorch_tanh",
      layer_types: Array.from({ length: s.layers }, (_, i) => (i % 2 === 0 ? "sliding_attention" : "full_attention")),
    })),
  gemma3: fc
    .record({
      s: shape,
      full: fc.oneof(defaultRope, linearRope),
      localTheta: fc.constantFrom(10000, 20000),
      window,
      sliding: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      scalar: fc.constantFrom(8, 16, 32),
      finalCap: fc.constantFrom(null, 30),
    })
    .map(({ s, full, localTheta, window, sliding, scalar, finalCap }) => ({
      model_type: "gemma3_text",
      ...base(s),
      rope_parameters: { full_attention: full, sliding_attention: { rope_type: "default", rope_theta: localTheta } },
      sliding_window: window,
      query_pre_attn_scalar: scalar,
      final_logit_softcapping: finalCap,
      hidden_activation: "gelu_pytorch_tanh",
      layer_types: Array.from({ length: s.layers }, (_, i) => (sliding[i] ? "sliding_attention" : "full_attention")),
    })),
};

/** `count` configurations per family, reproducible from `seed`. */
export function drawConfigs(seed: number, count: number): { family: PeerFamily; index: number; config: Record<string, unknown> }[] {
  return FAMILIES.flatMap((family, f) =>
    fc.sample(familyConfig[family], { seed: seed + f, numRuns: count }).map((config, index) => ({ family, index, config })),
  );
}
