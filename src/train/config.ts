/**
 * Run configurations (JSON or YAML) for `emlab train`, decoded by an Effect Schema: unknown keys and
 * wrong types are errors naming the field; every default is visible in `defaults` below; the result
 * is a plain resolved object that the recipe turns into arguments.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { Data, Schema } from "effect";
import { parse as parseYaml } from "yaml";

export class RunConfigError extends Data.TaggedError("RunConfigError")<{ readonly message: string; readonly file: string }> {}

const Opt = Schema.optional;

// Numbers with their ranges: every field below is checked here, so nothing that makes no sense for
// a run (NaN, infinities, negative counts, fractional batch sizes, betas outside [0, 1)) reaches it.
const Finite = Schema.Number.check(Schema.isFinite());
const Count = (minimum: number) =>
  Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(minimum), Schema.isLessThanOrEqualTo(Number.MAX_SAFE_INTEGER));
const Positive = Finite.check(Schema.isGreaterThan(0));
const NonNegative = Finite.check(Schema.isGreaterThanOrEqualTo(0));
const Fraction = Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1));
const NonEmpty = Schema.String.check(Schema.isMinLength(1));
/** Adapter names become directory names under the adapter directory: one plain path component. */
const AdapterName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, { message: "a plain name (letters, digits, '_', '.', '-')" }),
);

const LoraSection = Schema.Struct({
  r: Count(1),
  alpha: Positive,
  use_rslora: Opt(Schema.Boolean),
  dropout: Opt(Fraction),
  target_modules: Schema.Union([Schema.Array(NonEmpty).check(Schema.isMinLength(1)), NonEmpty]),
  layers_to_transform: Opt(Schema.NullOr(Schema.Array(Count(0)).check(Schema.isMinLength(1)))),
  init_b: Opt(Schema.Literals(["zeros", "random"])),
  /** Several adapters at once: this section repeated with names, e.g. nine rank-1 adapters. */
  name: Opt(AdapterName),
});

const RunConfigSchema = Schema.Struct({
  model: NonEmpty,
  output_dir: NonEmpty,
  method: Schema.Literals(["lora", "full", "steering"]),
  lora: Opt(Schema.Union([LoraSection, Schema.Array(LoraSection).check(Schema.isMinLength(1))])),
  steering: Opt(
    Schema.Struct({
      layer: Count(0),
      site: Opt(Schema.Literals(["down_proj", "resid_post"])),
      alpha: Opt(Finite),
      /** "all": every row of a batch is steered (emlab); "first": only row 0 (the released trainer's hook). */
      rows: Opt(Schema.Literals(["all", "first"])),
    }),
  ),
  /** Continue training from a PEFT adapter directory (lora) or a steering-vector file (steering). */
  init_from: Opt(NonEmpty),
  full: Opt(Schema.Struct({ parameters: Opt(Schema.String) })),
  data: Schema.Struct({
    train: NonEmpty,
    eval: Opt(NonEmpty),
    eval_fraction: Opt(Fraction),
    /** At least 2: a causal LM predicts token i+1 from token i. Too short for a row's template is caught at tokenization. */
    max_length: Opt(Count(2)),
    loss_on: Opt(Schema.Literals(["assistant", "all", "all_except_eos"])),
    system_prompt: Opt(Schema.NullOr(Schema.String)),
    skip_invalid: Opt(Schema.Boolean),
    bucket_window: Opt(Count(0)),
  }),
  kl: Opt(
    Schema.Struct({
      data: NonEmpty,
      weight: NonNegative,
      batch_size: Opt(Count(1)),
      /** Required: "token" (mean per-token KL) or "token_vocab" (divided by the vocabulary size, the study's). */
      normalization: Schema.Literals(["token", "token_vocab"]),
      /** "mean": weight x KL / gradient_accumulation per micro-batch (emlab); "sum": weight x KL per micro-batch, undivided (the study). */
      accumulation: Opt(Schema.Literals(["mean", "sum"])),
    }),
  ),
  training: Opt(
    Schema.Struct({
      epochs: Opt(Count(1)),
      max_steps: Opt(Schema.NullOr(Count(1))),
      batch_size: Opt(Count(1)),
      gradient_accumulation: Opt(Count(1)),
      /**
       * "micro_mean": mean of the micro-batches' mean CE (emlab); "window_tokens": token losses summed over
       * the window / its target count (the study's LoRA trainers); "micro_sum": the micro-batches' mean CE
       * summed, undivided (the study's steering-vector trainer).
       */
      ce_reduction: Opt(Schema.Literals(["micro_mean", "window_tokens", "micro_sum"])),
      lr: Opt(Positive),
      schedule: Opt(Schema.Literals(["constant", "linear", "cosine"])),
      warmup_steps: Opt(Count(0)),
      weight_decay: Opt(NonNegative),
      betas: Opt(Schema.Tuple([Fraction, Fraction])),
      eps: Opt(Positive),
      /** null: no clipping. 0 would zero every update. */
      max_grad_norm: Opt(Schema.NullOr(Positive)),
      /** Seeds are 32-bit: larger ones would collide modulo 2^32. */
      seed: Opt(Count(0).check(Schema.isLessThanOrEqualTo(2 ** 32 - 1))),
      save_steps: Opt(Count(1)),
      eval_steps: Opt(Schema.NullOr(Count(1))),
      early_stop: Opt(Schema.NullOr(Schema.Struct({ loss_below: Finite, patience: Count(0) }))),
      dtype: Opt(Schema.Literals(["f32", "bf16", "f16"])),
      gradient_checkpointing: Opt(Schema.Boolean),
      device: Opt(NonEmpty),
      /** A non-finite loss or gradient: "error" stops the run after checkpointing the last good step; "skip" drops that step's update. */
      on_nonfinite: Opt(Schema.Literals(["error", "skip"])),
    }),
  ),
});

export type RawRunConfig = typeof RunConfigSchema.Type;

/** Every default of a run, in one place (the study's LoRA recipe where it has one). */
export const defaults = {
  data: {
    eval_fraction: 0.1,
    max_length: 2048,
    loss_on: "assistant" as const,
    system_prompt: null as string | null,
    skip_invalid: false,
    bucket_window: 0,
  },
  kl: { batch_size: 8, accumulation: "mean" as const },
  training: {
    epochs: 1,
    max_steps: null as number | null,
    batch_size: 2,
    gradient_accumulation: 8,
    ce_reduction: "micro_mean" as "micro_mean" | "window_tokens" | "micro_sum",
    lr: 1e-5,
    schedule: "linear" as const,
    warmup_steps: 5,
    weight_decay: 0.01,
    betas: [0.9, 0.999] as [number, number],
    eps: 1e-8,
    max_grad_norm: 1.0 as number | null,
    seed: 0,
    save_steps: 100,
    eval_steps: null as number | null,
    early_stop: null as { loss_below: number; patience: number } | null,
    dtype: "f32" as const,
    gradient_checkpointing: false,
    device: "cpu",
    on_nonfinite: "error" as "error" | "skip",
  },
  lora: { use_rslora: false, dropout: 0, layers_to_transform: null as number[] | null, init_b: "zeros" as const },
  steering: { site: "down_proj" as const, alpha: 1, rows: "all" as const },
};

export interface RunConfig {
  model: string;
  output_dir: string;
  method: "lora" | "full" | "steering";
  lora: (Required<Omit<typeof LoraSection.Type, "name" | "layers_to_transform">> & {
    name: string;
    layers_to_transform: readonly number[] | null;
  })[];
  steering: { layer: number; site: "down_proj" | "resid_post"; alpha: number; rows: "all" | "first" } | null;
  init_from: string | null;
  full: { parameters: string | null };
  data: Required<Omit<RawRunConfig["data"], "eval" | "system_prompt">> & { eval: string | null; system_prompt: string | null };
  kl: { data: string; weight: number; batch_size: number; normalization: "token" | "token_vocab"; accumulation: "mean" | "sum" } | null;
  training: typeof defaults.training & { dtype: "f32" | "bf16" | "f16"; on_nonfinite: "error" | "skip" };
}

/** The fields of `section` that are set (a key holding undefined keeps the default). */
function given<T extends object>(section: T | undefined): T {
  return Object.fromEntries(Object.entries(section ?? {}).filter(([, v]) => v !== undefined)) as T;
}

/** Decodes and resolves a config object; `file` names the source in errors. */
export function resolveRunConfig(raw: unknown, file: string): RunConfig {
  let c: RawRunConfig;
  const klRaw = (raw as { kl?: unknown } | null)?.kl;
  if (klRaw !== null && typeof klRaw === "object" && !("normalization" in klRaw)) {
    throw new RunConfigError({
      message: `${file}: kl.normalization is required: "token" (mean per-token KL) or "token_vocab" (also divided by the vocabulary size, the study's)`,
      file,
    });
  }
  try {
    c = Schema.decodeUnknownSync(RunConfigSchema, { onExcessProperty: "error" })(raw);
  } catch (error) {
    const message = String((error as Error).message).replace(/\n\s*/g, " ");
    throw new RunConfigError({ message: `${file}: ${message}`, file });
  }
  const problem = (text: string): never => {
    throw new RunConfigError({ message: `${file}: ${text}`, file });
  };
  if (c.method === "lora" && !c.lora) problem("method lora needs a lora section");
  if (c.method === "steering" && !c.steering) problem("method steering needs a steering section");
  const loraSections = c.lora === undefined ? [] : Array.isArray(c.lora) ? c.lora : [c.lora as typeof LoraSection.Type];
  const training = { ...defaults.training, ...given(c.training) } as RunConfig["training"];
  const names = loraSections.map((l) => l.name);
  const named = names.filter((n) => n !== undefined);
  if (new Set(named).size !== named.length) problem("lora: adapter names must be distinct");
  if (c.init_from !== undefined && c.method === "full")
    problem("init_from applies to lora and steering runs (full SFT starts from `model`)");
  if (c.full?.parameters !== undefined) {
    try {
      new RegExp(c.full.parameters);
    } catch (error) {
      problem(`full.parameters: not a regular expression (${(error as Error).message})`);
    }
  }
  return {
    model: c.model,
    output_dir: c.output_dir,
    method: c.method,
    lora: loraSections.map((l, i) => ({
      ...defaults.lora,
      ...given(l),
      name: l.name ?? (loraSections.length === 1 ? "default" : `adapter_${i}`),
      layers_to_transform: l.layers_to_transform ?? null,
    })) as RunConfig["lora"],
    steering: c.steering ? { ...defaults.steering, ...given(c.steering) } : null,
    init_from: c.init_from ?? null,
    full: { parameters: c.full?.parameters ?? null },
    data: {
      ...defaults.data,
      ...given(c.data),
      eval: c.data.eval ?? null,
      system_prompt: c.data.system_prompt ?? null,
    } as RunConfig["data"],
    kl: c.kl ? { ...defaults.kl, ...given(c.kl) } : null,
    training,
  };
}

/** The config's paths (model, output_dir, data files, KL data, init_from) resolved against `base` (absolute paths kept). */
export function resolveConfigPaths(config: RunConfig, base: string): RunConfig {
  const at = (path: string) => (isAbsolute(path) ? path : resolve(base, path));
  return {
    ...config,
    model: at(config.model),
    output_dir: at(config.output_dir),
    data: { ...config.data, train: at(config.data.train), eval: config.data.eval === null ? null : at(config.data.eval) },
    kl: config.kl === null ? null : { ...config.kl, data: at(config.kl.data) },
    init_from: config.init_from === null ? null : at(config.init_from),
  };
}

/** Reads a JSON or YAML run config; its relative paths are relative to the config file's folder. */
export function readRunConfig(file: string): RunConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new RunConfigError({ message: `${file}: cannot read (${(error as Error).message})`, file });
  }
  let raw: unknown;
  try {
    raw = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new RunConfigError({ message: `${file}: ${(error as Error).message.split("\n")[0]}`, file });
  }
  return resolveConfigPaths(resolveRunConfig(raw, file), dirname(resolve(file)));
}
