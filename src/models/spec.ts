/**
 * The model families emlab reads, and the spec type their folders produce (defined with the shared
 * blocks in src/nn/spec.ts, narrowed here to a known family name).
 */
import type { DecoderSpec } from "../nn/spec.js";

export type { LayerSpec } from "../nn/spec.js";

export type FamilyName = "qwen2" | "qwen3" | "llama" | "gemma2" | "gemma3";

/** A DecoderSpec built by one of the family folders. */
export interface ModelSpec extends DecoderSpec {
  family: FamilyName;
}
