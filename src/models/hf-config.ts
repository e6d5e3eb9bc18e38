/**
 * Reading Hugging Face config.json / generation_config.json: an Effect Schema for the fields emlab
 * uses (unknown keys are ignored, wrong types are errors naming the field), RoPE settings in both
 * forms (transformers-5 `rope_parameters`, possibly per layer type, and the older `rope_theta` +
 * `rope_scaling`), and the multimodal Gemma 3 wrapper whose text settings live in `text_config`.
 */
import { readTextFile } from "../io/files.js";
import { join } from "node:path";
import { Schema } from "effect";
import type { RopeSpec } from "../nn/rope.js";
import { checkNonNegativeInteger, checkPositiveFinite, checkRopeParameters, checkTextConfig } from "./config-checks.js";
import { ModelConfigError } from "./errors.js";

const TokenIds = Schema.optional(Schema.NullOr(Schema.Union([Schema.Number, Schema.Array(Schema.Number)])));
const RopeParameters = Schema.Record(Schema.String, Schema.Unknown);

const TextConfigFields = {
  architectures: Schema.optional(Schema.Array(Schema.String)),
  model_type: Schema.optional(Schema.String),
  vocab_size: Schema.Number,
  hidden_size: Schema.Number,
  intermediate_size: Schema.Number,
  num_hidden_layers: Schema.Number,
  num_attention_heads: Schema.Number,
  num_key_value_heads: Schema.optional(Schema.NullOr(Schema.Number)),
  head_dim: Schema.optional(Schema.NullOr(Schema.Number)),
  rms_norm_eps: Schema.optional(Schema.Number),
  hidden_act: Schema.optional(Schema.String),
  hidden_activation: Schema.optional(Schema.NullOr(Schema.String)),
  attention_bias: Schema.optional(Schema.Boolean),
  mlp_bias: Schema.optional(Schema.Boolean),
  tie_word_embeddings: Schema.optional(Schema.Boolean),
  rope_theta: Schema.optional(Schema.Number),
  rope_scaling: Schema.optional(Schema.NullOr(RopeParameters)),
  rope_parameters: Schema.optional(Schema.NullOr(RopeParameters)),
  rope_local_base_freq: Schema.optional(Schema.Number),
  max_position_embeddings: Schema.optional(Schema.NullOr(Schema.Number)),
  sliding_window: Schema.optional(Schema.NullOr(Schema.Number)),
  use_sliding_window: Schema.optional(Schema.Boolean),
  max_window_layers: Schema.optional(Schema.Number),
  sliding_window_pattern: Schema.optional(Schema.Number),
  _sliding_window_pattern: Schema.optional(Schema.Number),
  layer_types: Schema.optional(Schema.Array(Schema.String)),
  query_pre_attn_scalar: Schema.optional(Schema.NullOr(Schema.Number)),
  attn_logit_softcapping: Schema.optional(Schema.NullOr(Schema.Number)),
  final_logit_softcapping: Schema.optional(Schema.NullOr(Schema.Number)),
  bos_token_id: TokenIds,
  eos_token_id: TokenIds,
  pad_token_id: TokenIds,
};

const TextConfig = Schema.Struct(TextConfigFields);
const WrapperConfig = Schema.Struct({
  architectures: Schema.optional(Schema.Array(Schema.String)),
  model_type: Schema.optional(Schema.String),
  text_config: Schema.optional(Schema.Record(Schema.String, Schema.Unknown)),
});

/** The text-model fields of a config.json. */
export type HfConfig = typeof TextConfig.Type;

const GenerationConfig = Schema.Struct({
  bos_token_id: TokenIds,
  eos_token_id: TokenIds,
  pad_token_id: TokenIds,
  temperature: Schema.optional(Schema.NullOr(Schema.Number)),
  top_p: Schema.optional(Schema.NullOr(Schema.Number)),
  top_k: Schema.optional(Schema.NullOr(Schema.Number)),
  do_sample: Schema.optional(Schema.Boolean),
});
export type HfGenerationConfig = typeof GenerationConfig.Type;

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readTextFile(file);
  } catch (error) {
    throw new ModelConfigError({ message: `${file}: cannot read (${(error as Error).message})`, file });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelConfigError({ message: `${file}: not valid JSON (${(error as Error).message})`, file });
  }
}

function decode<A>(decoder: (input: unknown) => A, input: unknown, file: string, prefix = ""): A {
  try {
    return decoder(input);
  } catch (error) {
    const detail = String((error as Error).message).replace(/\n\s*/g, " ");
    throw new ModelConfigError({ message: `${file}: ${prefix}${detail}`, file });
  }
}

/**
 * Reads `dir/config.json`. For multimodal wrappers (Gemma3ForConditionalGeneration) returns the
 * text config with the wrapper's architecture recorded in `architectures`.
 */
export function readHfConfig(dir: string): HfConfig {
  const file = join(dir, "config.json");
  const raw = readJson(file);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ModelConfigError({ message: `${file}: not a JSON object`, file });
  }
  const wrapper = decode(Schema.decodeUnknownSync(WrapperConfig), raw, file);
  if (wrapper.text_config !== undefined) {
    const text = decode(Schema.decodeUnknownSync(TextConfig), wrapper.text_config, file, "text_config: ");
    checkTextConfig(text, file, "text_config.");
    return { ...text, architectures: wrapper.architectures ?? text.architectures, model_type: text.model_type ?? wrapper.model_type };
  }
  return checkTextConfig(decode(Schema.decodeUnknownSync(TextConfig), raw, file), file);
}

/** Reads `dir/generation_config.json` when present. */
export function readGenerationConfig(dir: string): HfGenerationConfig | null {
  const file = join(dir, "generation_config.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readTextFile(file));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ModelConfigError({ message: `${file}: ${(error as Error).message}`, file });
  }
  const config = decode(Schema.decodeUnknownSync(GenerationConfig), raw, file);
  for (const name of ["bos_token_id", "eos_token_id", "pad_token_id"] as const) {
    const value = config[name];
    if (value === undefined || value === null) continue;
    (typeof value === "number" ? [value] : value).forEach((id, i) =>
      checkNonNegativeInteger(id, typeof value === "number" ? name : `${name}[${i}]`, file),
    );
  }
  for (const name of ["temperature", "top_p"] as const) {
    const value = config[name];
    if (value !== undefined && value !== null && !(Number.isFinite(value) && value >= 0)) checkPositiveFinite(value, name, file);
  }
  if (config.top_k !== undefined && config.top_k !== null) checkNonNegativeInteger(config.top_k, "top_k", file);
  return config;
}

/** Token ids as a list (HF allows a number, a list or null). */
export function tokenIds(value: number | readonly number[] | null | undefined): number[] {
  if (value === null || value === undefined) return [];
  return typeof value === "number" ? [value] : [...value];
}

const num = (value: unknown): number | undefined => (typeof value === "number" ? value : undefined);

/** One RoPE spec from a rope_parameters / rope_scaling object (theta from the object or `theta`). */
export function ropeFrom(
  params: Record<string, unknown> | null | undefined,
  theta: number | undefined,
  file: string,
  field = "rope_parameters",
): RopeSpec {
  if (params) checkRopeParameters(params, file, field);
  const type = (params?.rope_type ?? params?.type ?? "default") as string;
  const base = num(params?.rope_theta) ?? theta;
  if (base === undefined) throw new ModelConfigError({ message: `${file}: no rope_theta`, file });
  checkPositiveFinite(base, "rope_theta", file);
  switch (type) {
    case "default":
      return { theta: base, type: "default" };
    case "linear":
      return { theta: base, type: "linear", factor: num(params?.factor) ?? 1 };
    case "llama3":
      if ((num(params?.high_freq_factor) ?? 4) <= (num(params?.low_freq_factor) ?? 1)) {
        throw new ModelConfigError({ message: `${file}: ${field}.high_freq_factor must be greater than low_freq_factor`, file });
      }
      return {
        theta: base,
        type: "llama3",
        factor: num(params?.factor) ?? 8,
        lowFreqFactor: num(params?.low_freq_factor) ?? 1,
        highFreqFactor: num(params?.high_freq_factor) ?? 4,
        originalMaxPositions: num(params?.original_max_position_embeddings) ?? 8192,
      };
    default:
      throw new ModelConfigError({ message: `${file}: unsupported rope_type ${JSON.stringify(type)}`, file });
  }
}

/**
 * The RoPE spec for a layer type ("full_attention" / "sliding_attention"): transformers-5 configs may
 * nest rope_parameters per layer type; older ones use rope_theta + rope_scaling, and Gemma 3 a
 * separate rope_local_base_freq (unscaled) for sliding layers.
 */
export function ropeForLayerType(config: HfConfig, layerType: string, file: string): RopeSpec {
  const params = config.rope_parameters ?? undefined;
  if (params && typeof params[layerType] === "object" && params[layerType] !== null) {
    return ropeFrom(params[layerType] as Record<string, unknown>, config.rope_theta, file, `rope_parameters.${layerType}`);
  }
  if (params && ("rope_type" in params || "rope_theta" in params)) return ropeFrom(params, config.rope_theta, file);
  if (layerType === "sliding_attention" && config.rope_local_base_freq !== undefined) {
    return { theta: config.rope_local_base_freq, type: "default" };
  }
  return ropeFrom(config.rope_scaling ?? undefined, config.rope_theta ?? 10000, file, "rope_scaling");
}
