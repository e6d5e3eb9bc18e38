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

const Num = Schema.Number;
const Opt = Schema.optional;

const LoraSection = Schema.Struct({
  r: Num,
  alpha: Num,
  use_rslora: Opt(Schema.Boolean),
  dropout: Opt(Num),
  target_modules: Schema.Union([Schema.Array(Schema.String), Schema.String]),
  layers_to_transform: Opt(Schema.NullOr(Schema.Array(Num))),
  init_b: Opt(Schema.Literals(["zeros", "random"])),
  /** Several adapters at once: this section repeated with names, e.g. nine rank-1 adapters. */
  name: Opt(Schema.String),
});

const RunConfigSchema = Schema.Struct({
  model: Schema.String,
  output_dir: Schema.String,
  method: Schema.Literals(["lora", "full", "steering"]),
  lora: Opt(Schema.Union([LoraSection, Schema.Array(LoraSection)])),
  steering: Opt(Schema.Struct({ layer: Num, site: Opt(Schema.Literals(["down_proj", "resid_post"])), alpha: Opt(Num) })),
  full: Opt(Schema.Struct({ parameters: Opt(Schema.String) })),
  data: Schema.Struct({
    train: Schema.String,
    eval: Opt(Schema.String),
    eval_fraction: Opt(Num),
    max_length: Opt(Num),
    loss_on: Opt(Schema.Literals(["assistant", "all"])),
    system_prompt: Opt(Schema.NullOr(Schema.String)),
    skip_invalid: Opt(Schema.Boolean),
    bucket_window: Opt(Num),
  }),
  kl: Opt(
    Schema.Struct({
      data: Schema.String,
      weight: Num,
      batch_size: Opt(Num),
      normalization: Opt(Schema.Literals(["token", "token_vocab"])),
    }),
  ),
  training: Opt(
    Schema.Struct({
      epochs: Opt(Num),
      max_steps: Opt(Schema.NullOr(Num)),
      batch_size: Opt(Num),
      gradient_accumulation: Opt(Num),
      lr: Opt(Num),
      schedule: Opt(Schema.Literals(["constant", "linear", "cosine"])),
      warmup_steps: Opt(Num),
      weight_decay: Opt(Num),
      betas: Opt(Schema.Tuple([Num, Num])),
      eps: Opt(Num),
      max_grad_norm: Opt(Schema.NullOr(Num)),
      seed: Opt(Num),
      save_steps: Opt(Num),
      eval_steps: Opt(Schema.NullOr(Num)),
      early_stop: Opt(Schema.NullOr(Schema.Struct({ loss_below: Num, patience: Num }))),
      dtype: Opt(Schema.Literals(["f32", "bf16", "f16"])),
      gradient_checkpointing: Opt(Schema.Boolean),
      device: Opt(Schema.String),
    }),
  ),
});

export type RawRunConfig = typeof RunConfigSchema.Type;

/** Every default of a run, in one place (the study's LoRA recipe where it has one). */
export const defaults = {
  data: { eval_fraction: 0.1, max_length: 2048, loss_on: "assistant" as const, system_prompt: null as string | null, skip_invalid: false, bucket_window: 0 },
  kl: { batch_size: 8, normalization: "token" as const },
  training: {
    epochs: 1,
    max_steps: null as number | null,
    batch_size: 2,
    gradient_accumulation: 8,
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
  },
  lora: { use_rslora: false, dropout: 0, layers_to_transform: null as number[] | null, init_b: "zeros" as const },
  steering: { site: "down_proj" as const, alpha: 1 },
};

export interface RunConfig {
  model: string;
  output_dir: string;
  method: "lora" | "full" | "steering";
  lora: (Required<Omit<typeof LoraSection.Type, "name" | "layers_to_transform">> & { name: string; layers_to_transform: readonly number[] | null })[];
  steering: { layer: number; site: "down_proj" | "resid_post"; alpha: number } | null;
  full: { parameters: string | null };
  data: Required<Omit<RawRunConfig["data"], "eval" | "system_prompt">> & { eval: string | null; system_prompt: string | null };
  kl: { data: string; weight: number; batch_size: number; normalization: "token" | "token_vocab" } | null;
  training: typeof defaults.training & { dtype: "f32" | "bf16" | "f16" };
}

/** Decodes and resolves a config object; `file` names the source in errors. */
export function resolveRunConfig(raw: unknown, file: string): RunConfig {
  let c: RawRunConfig;
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
  const training = { ...defaults.training, ...c.training } as RunConfig["training"];
  if (training.batch_size < 1 || training.gradient_accumulation < 1) problem("training.batch_size and gradient_accumulation must be >= 1");
  return {
    model: c.model,
    output_dir: c.output_dir,
    method: c.method,
    lora: loraSections.map((l, i) => ({
      ...defaults.lora,
      ...l,
      name: l.name ?? (loraSections.length === 1 ? "default" : `adapter_${i}`),
      layers_to_transform: l.layers_to_transform ?? null,
    })) as RunConfig["lora"],
    steering: c.steering ? { ...defaults.steering, ...c.steering } : null,
    full: { parameters: c.full?.parameters ?? null },
    data: { ...defaults.data, ...c.data, eval: c.data.eval ?? null, system_prompt: c.data.system_prompt ?? null } as RunConfig["data"],
    kl: c.kl ? { ...defaults.kl, ...c.kl } : null,
    training,
  };
}

/** The config's paths (model, output_dir, data files, KL data) resolved against `base` (absolute paths kept). */
export function resolveConfigPaths(config: RunConfig, base: string): RunConfig {
  const at = (path: string) => (isAbsolute(path) ? path : resolve(base, path));
  return {
    ...config,
    model: at(config.model),
    output_dir: at(config.output_dir),
    data: { ...config.data, train: at(config.data.train), eval: config.data.eval === null ? null : at(config.data.eval) },
    kl: config.kl === null ? null : { ...config.kl, data: at(config.kl.data) },
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
