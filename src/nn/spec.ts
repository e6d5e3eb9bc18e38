/**
 * The architecture-neutral description of a decoder that the shared blocks in src/nn run from.
 * Family folders (src/models/<family>/) turn a Hugging Face config.json into one of these; nothing
 * here knows a family beyond its name.
 */
import type { NormStyle } from "./rms-norm.js";
import type { RopeSpec } from "./rope.js";

export interface LayerSpec {
  /** Keys further back than this many positions are masked (sliding-window layers); null = full. */
  slidingWindow: number | null;
  rope: RopeSpec;
}

export interface DecoderSpec {
  /** The family that built the spec (qwen2, llama, ...): a label for messages and file metadata. */
  family: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  /** Positions the model was trained for (config max_position_embeddings); null when not stated. */
  maxPositions: number | null;
  normStyle: NormStyle;
  /** q/k/v projections have biases (Qwen2). */
  qkvBias: boolean;
  /** o_proj has a bias (Llama attention_bias). */
  oBias: boolean;
  /** gate/up/down have biases (Llama mlp_bias). */
  mlpBias: boolean;
  /** RMSNorm over d_head on q and k before RoPE (Qwen3, Gemma 3). */
  qkNorm: boolean;
  /** Gemma's post-attention and pre/post-feedforward norms. */
  sandwichNorms: boolean;
  /** Multiplier of the embedding output (Gemma: sqrt(d_model)); null = none. */
  embeddingScale: number | null;
  activation: "silu" | "gelu_tanh";
  /** Multiplier of q k^T. */
  attentionScale: number;
  attnSoftcap: number | null;
  finalSoftcap: number | null;
  tieEmbeddings: boolean;
  layers: LayerSpec[];
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
}
