/**
 * Range checks of a decoded config.json (the Schema in hf-config.ts only checks types): sizes are
 * positive integers, heads divide evenly, epsilons, RoPE bases and scalars are finite and positive,
 * layer types match the layer count, token ids are non-negative integers. Each failure is a
 * ModelConfigError naming the file and the field. A model whose settings make no sense never runs.
 */
import { ModelConfigError } from "./errors.js";
import type { HfConfig } from "./hf-config.js";

/** More layers than any released decoder has; beyond it a config is a mistake (and would exhaust memory). */
export const MAX_LAYERS = 1024;
/** Largest width accepted for hidden/intermediate sizes, heads and vocabularies. */
const MAX_SIZE = 2 ** 31 - 1;

const fail = (file: string, field: string, problem: string): never => {
  throw new ModelConfigError({ message: `${file}: ${field} ${problem}`, file });
};

const describe = (value: unknown): string => (typeof value === "number" ? String(value) : JSON.stringify(value));

/** A positive integer no larger than `max`. */
export function checkPositiveInteger(value: unknown, field: string, file: string, max = MAX_SIZE): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)
    fail(file, field, `must be a positive integer, got ${describe(value)}`);
  if ((value as number) > max) fail(file, field, `is ${describe(value)}, above the limit of ${max}`);
  return value as number;
}

/** A non-negative integer. */
export function checkNonNegativeInteger(value: unknown, field: string, file: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)
    fail(file, field, `must be a non-negative integer, got ${describe(value)}`);
  return value as number;
}

/** A finite number > 0. */
export function checkPositiveFinite(value: unknown, field: string, file: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0)
    fail(file, field, `must be a finite number > 0, got ${describe(value)}`);
  return value as number;
}

const LAYER_TYPES = new Set(["full_attention", "sliding_attention"]);

/** Every range rule of the text-model fields emlab reads; returns the config unchanged. */
export function checkTextConfig(config: HfConfig, file: string, prefix = ""): HfConfig {
  const f = (name: string): string => `${prefix}${name}`;
  checkPositiveInteger(config.vocab_size, f("vocab_size"), file);
  const hidden = checkPositiveInteger(config.hidden_size, f("hidden_size"), file);
  checkPositiveInteger(config.intermediate_size, f("intermediate_size"), file);
  const layers = checkPositiveInteger(config.num_hidden_layers, f("num_hidden_layers"), file, MAX_LAYERS);
  const heads = checkPositiveInteger(config.num_attention_heads, f("num_attention_heads"), file);
  if (config.num_key_value_heads !== undefined && config.num_key_value_heads !== null) {
    const kv = checkPositiveInteger(config.num_key_value_heads, f("num_key_value_heads"), file);
    if (heads % kv !== 0) fail(file, f("num_key_value_heads"), `(${kv}) must divide num_attention_heads (${heads})`);
  }
  if (config.head_dim !== undefined && config.head_dim !== null) {
    checkPositiveInteger(config.head_dim, f("head_dim"), file);
  } else if (hidden % heads !== 0) {
    fail(file, f("hidden_size"), `(${hidden}) must be divisible by num_attention_heads (${heads}) when head_dim is not given`);
  }
  if (config.rms_norm_eps !== undefined) checkPositiveFinite(config.rms_norm_eps, f("rms_norm_eps"), file);
  if (config.rope_theta !== undefined) checkPositiveFinite(config.rope_theta, f("rope_theta"), file);
  if (config.rope_local_base_freq !== undefined) checkPositiveFinite(config.rope_local_base_freq, f("rope_local_base_freq"), file);
  for (const name of ["query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping"] as const) {
    const value = config[name];
    if (value !== undefined && value !== null) checkPositiveFinite(value, f(name), file);
  }
  if (config.sliding_window !== undefined && config.sliding_window !== null)
    checkPositiveInteger(config.sliding_window, f("sliding_window"), file);
  if (config.max_window_layers !== undefined) checkNonNegativeInteger(config.max_window_layers, f("max_window_layers"), file);
  for (const name of ["sliding_window_pattern", "_sliding_window_pattern"] as const) {
    if (config[name] !== undefined) checkPositiveInteger(config[name], f(name), file);
  }
  if (config.max_position_embeddings !== undefined && config.max_position_embeddings !== null) {
    checkPositiveInteger(config.max_position_embeddings, f("max_position_embeddings"), file);
  }
  if (config.layer_types !== undefined) {
    if (config.layer_types.length !== layers) {
      fail(file, f("layer_types"), `lists ${config.layer_types.length} layers but num_hidden_layers is ${layers}`);
    }
    config.layer_types.forEach((type, i) => {
      if (!LAYER_TYPES.has(type))
        fail(file, f(`layer_types[${i}]`), `is ${JSON.stringify(type)}; supported: full_attention, sliding_attention`);
    });
  }
  for (const name of ["bos_token_id", "eos_token_id", "pad_token_id"] as const) {
    const value = config[name];
    if (value === undefined || value === null) continue;
    const list = typeof value === "number" ? [value] : value;
    list.forEach((id, i) => checkNonNegativeInteger(id, typeof value === "number" ? f(name) : f(`${name}[${i}]`), file));
  }
  return config;
}

/**
 * The activation a family runs, checked against the config: `supported` lists the names of that one
 * function; a config naming anything else is refused rather than silently run with the family's own.
 */
export function checkActivation(
  config: HfConfig,
  file: string,
  supported: readonly string[],
  fields: readonly ("hidden_act" | "hidden_activation")[],
): void {
  for (const field of fields) {
    const value = config[field];
    if (value === undefined || value === null) continue;
    if (!supported.includes(value)) {
      fail(
        file,
        field,
        `is ${JSON.stringify(value)}; this model family supports only ${supported.map((s) => JSON.stringify(s)).join(" or ")}`,
      );
    }
  }
}

/** RoPE scaling values: each present factor finite and > 0, positions positive integers. */
export function checkRopeParameters(params: Record<string, unknown>, file: string, field: string): void {
  for (const name of ["rope_theta", "factor", "low_freq_factor", "high_freq_factor"]) {
    if (params[name] !== undefined) checkPositiveFinite(params[name], `${field}.${name}`, file);
  }
  if (params.original_max_position_embeddings !== undefined) {
    checkPositiveInteger(params.original_max_position_embeddings, `${field}.original_max_position_embeddings`, file);
  }
}
