/**
 * Experiment files (JSON or YAML), decoded by an Effect Schema: a base model, named judges and a list
 * of named stages, each of one kind (train, kl-data, sample, judge, steer, ablate, metrics, direction,
 * efficiency, stability, significance, gradients) naming its inputs: a path, or the name of an earlier
 * stage whose output it uses. Unknown keys, wrong types, duplicate names, references to unknown or
 * later stages and references of the wrong kind are errors naming the file and the field.
 * This file only describes and checks; src/experiment/plan.ts turns a decoded file into a plan.
 */
import { readFileSync } from "node:fs";
import { Data, Schema } from "effect";
import { parse as parseYaml } from "yaml";

export class ExperimentFileError extends Data.TaggedError("ExperimentFileError")<{
  readonly message: string;
  readonly file: string;
  readonly path: string;
}> {}

const Num = Schema.Number;
const Str = Schema.String;
const Opt = Schema.optional;
const Nums = Schema.Array(Num);
/** A stage name or a path. */
const Ref = Str;
/** Labelled inputs, e.g. `{ general: general_sv, narrow: narrow_sv }`. */
const Labelled = Schema.Record(Str, Ref);

const Common = {
  name: Str,
  /** Base model directory or a full-SFT train stage; default: the experiment's model. */
  model: Opt(Ref),
  device: Opt(Str),
  dtype: Opt(Schema.Literals(["f32", "bf16", "f16"])),
};

const Sampling = {
  questions: Str,
  samples: Opt(Num),
  max_new_tokens: Opt(Num),
  temperature: Opt(Num),
  top_p: Opt(Num),
  seed: Opt(Num),
  chunk_size: Opt(Num),
  system: Opt(Str),
  /** A LoRA adapter or steering vector applied while sampling: a train stage or a path. */
  solution: Opt(Ref),
  /** A judge declared under `judges`; none: sample only. */
  judge: Opt(Str),
  judge_names: Opt(Schema.Array(Str)),
  /** A judges file (e.g. judges.yaml) with prompts by judge name, for questions without their own. */
  judge_prompts: Opt(Str),
};

/**
 * `direction_layer: L` uses the direction's row L at every hooked layer (the study's replicated layer-24 vector,
 * protocol.md §7.5-7.6); omitted, each layer uses its own row (ours).
 */
const Intervention = {
  direction: Ref,
  layers: Schema.Union([Schema.Array(Num), Schema.Literal("all")]),
  direction_layer: Opt(Num),
  random_control: Opt(Num),
};

export const StageSchemas = {
  train: Schema.Struct({
    ...Common,
    kind: Schema.Literal("train"),
    config: Schema.Union([Str, Schema.Record(Str, Schema.Unknown)]),
    kl_data: Opt(Ref),
    init_from: Opt(Ref),
  }),
  "kl-data": Schema.Struct({
    ...Common,
    kind: Schema.Literal("kl-data"),
    prompts: Str,
    limit: Opt(Num),
    max_new_tokens: Opt(Num),
    seed: Opt(Num),
  }),
  /** `endpoint` samples through an OpenAI-compatible server (emlab serve, vLLM) instead of loading the model; its `model` names the served model or LoRA module. */
  sample: Schema.Struct({
    ...Common,
    kind: Schema.Literal("sample"),
    ...Sampling,
    endpoint: Opt(Schema.Struct({ url: Str, model: Str, api_key_env: Opt(Str), concurrency: Opt(Num) })),
  }),
  steer: Schema.Struct({ ...Common, kind: Schema.Literal("steer"), ...Sampling, ...Intervention, scale: Opt(Num) }),
  /** `weight_space: true` removes the direction from the solution's down_proj LoRA B matrices, each renormalised to its original Frobenius norm (the study's), instead of hooking activations. */
  ablate: Schema.Struct({ ...Common, kind: Schema.Literal("ablate"), ...Sampling, ...Intervention, weight_space: Opt(Schema.Boolean) }),
  judge: Schema.Struct({
    ...Common,
    kind: Schema.Literal("judge"),
    results: Ref,
    judge: Str,
    judge_names: Opt(Schema.Array(Str)),
    questions: Opt(Str),
  }),
  metrics: Schema.Struct({
    ...Common,
    kind: Schema.Literal("metrics"),
    results: Labelled,
    aligned_threshold: Opt(Num),
    aligned_inclusive: Opt(Schema.Boolean),
    coherent_threshold: Opt(Num),
    /** Pairs of results (same rows, two judges) whose agreement is reported. */
    agreement: Opt(Schema.Array(Schema.Struct({ a: Ref, b: Ref }))),
  }),
  direction: Schema.Struct({
    ...Common,
    kind: Schema.Literal("direction"),
    results: Ref,
    solution: Opt(Ref),
    seed: Opt(Num),
    batch_size: Opt(Num),
    compare: Opt(Labelled),
  }),
  efficiency: Schema.Struct({
    ...Common,
    kind: Schema.Literal("efficiency"),
    solutions: Labelled,
    data: Str,
    count: Opt(Num),
    seed: Opt(Num),
    scales: Opt(Nums),
  }),
  stability: Schema.Struct({
    ...Common,
    kind: Schema.Literal("stability"),
    solutions: Labelled,
    data: Str,
    count: Opt(Num),
    seed: Opt(Num),
    eps: Opt(Nums),
    seeds: Opt(Nums),
  }),
  significance: Schema.Struct({
    ...Common,
    kind: Schema.Literal("significance"),
    vectors: Labelled,
    texts: Str,
    layer: Opt(Num),
    norms: Opt(Nums),
    random: Opt(Num),
    alpha: Opt(Num),
    include_pads: Opt(Schema.Boolean),
    max_texts: Opt(Num),
  }),
  gradients: Schema.Struct({
    ...Common,
    kind: Schema.Literal("gradients"),
    runs: Labelled,
    data: Str,
    directions: Opt(Ref),
    count: Opt(Num),
  }),
};

export type StageKind = keyof typeof StageSchemas;
export const stageKinds = Object.keys(StageSchemas) as StageKind[];
export type StageOf<K extends StageKind> = (typeof StageSchemas)[K]["Type"];
export type Stage = { [K in StageKind]: StageOf<K> }[StageKind];

const JudgeSpec = Schema.Union([
  Schema.Struct({
    kind: Schema.Literal("openai"),
    model: Str,
    base_url: Opt(Str),
    azure_endpoint: Opt(Str),
    azure_api_version: Opt(Str),
    concurrency: Opt(Num),
    max_retries: Opt(Num),
    timeout_s: Opt(Num),
  }),
  Schema.Struct({ kind: Schema.Literal("local"), model: Str, concurrency: Opt(Num) }),
  Schema.Struct({ kind: Schema.Literal("function"), module: Str, export: Opt(Str), concurrency: Opt(Num) }),
]);
export type JudgeSpec = typeof JudgeSpec.Type;

const Top = Schema.Struct({
  description: Opt(Str),
  /** The base model directory (overridden by --model). */
  model: Opt(Str),
  /** Relative paths resolve against this directory (itself relative to the file); default the file's directory. */
  root: Opt(Str),
  /** Where the experiment directory goes (relative to root); default runs/<file name>. */
  output_dir: Opt(Str),
  device: Opt(Str),
  dtype: Opt(Schema.Literals(["f32", "bf16", "f16"])),
  judges: Opt(Schema.Record(Str, JudgeSpec)),
  /** Text shown at the top of the report (what the experiment is meant to show). */
  report: Opt(Schema.Struct({ title: Opt(Str), summary: Opt(Str), baseline: Opt(Str), in_domain: Opt(Schema.Array(Str)) })),
  stages: Schema.Array(Schema.Unknown),
});

export interface ExperimentFile {
  file: string;
  description: string | null;
  model: string | null;
  root: string | null;
  output_dir: string | null;
  device: string | null;
  dtype: "f32" | "bf16" | "f16" | null;
  judges: Record<string, JudgeSpec>;
  report: ReportSettings;
  stages: Stage[];
}

/** What the report says about the experiment: its title, summary, the baseline condition and the in-domain questions. */
export interface ReportSettings {
  title?: string;
  summary?: string;
  /** The condition (a metrics label) others are compared with, e.g. the chat model. */
  baseline?: string;
  /** Question ids of the fine-tuning domain (the rest count as out of domain). */
  in_domain?: readonly string[];
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

function fail(file: string, path: string, problem: string): never {
  throw new ExperimentFileError({ message: `${file}: ${path ? `${path}: ` : ""}${problem}`, file, path });
}

function decode<T>(schema: Schema.Codec<T, unknown>, value: unknown, file: string, path: string): T {
  try {
    return Schema.decodeUnknownSync(schema as never, { onExcessProperty: "error" })(value) as T;
  } catch (error) {
    return fail(file, path, String((error as Error).message).replace(/\n\s*/g, " "));
  }
}

/** The input fields of a stage that may name an earlier stage, as [field path, value] pairs. */
export function stageReferences(stage: Stage): [string, string][] {
  const out: [string, string][] = [];
  const s = stage as Record<string, unknown>;
  for (const key of ["model", "solution", "results", "direction", "directions", "kl_data", "init_from"])
    if (typeof s[key] === "string") out.push([key, s[key] as string]);
  for (const key of ["results", "solutions", "vectors", "runs", "compare"]) {
    const v = s[key];
    if (v && typeof v === "object" && !Array.isArray(v))
      for (const [label, ref] of Object.entries(v as Record<string, string>)) out.push([`${key}.${label}`, ref]);
  }
  if (Array.isArray(s.agreement))
    (s.agreement as { a: string; b: string }[]).forEach((p, i) => out.push([`agreement[${i}].a`, p.a], [`agreement[${i}].b`, p.b]));
  return out;
}

/** Decodes an experiment object; `file` names the source in errors. */
export function decodeExperiment(raw: unknown, file: string): ExperimentFile {
  const top = decode(Top as never, raw, file, "") as typeof Top.Type;
  const names = new Set<string>();
  const stages: Stage[] = top.stages.map((value, i) => {
    const path = `stages[${i}]`;
    const kind = (value as { kind?: unknown })?.kind;
    if (typeof kind !== "string" || !(kind in StageSchemas))
      fail(file, `${path}.kind`, `expected one of ${stageKinds.join(", ")}, got ${JSON.stringify(kind)}`);
    const stage = decode(StageSchemas[kind as StageKind] as never, value, file, path) as Stage;
    if (!NAME.test(stage.name))
      fail(file, `${path}.name`, `stage names are letters, digits, _ and - (starting with a letter), got ${JSON.stringify(stage.name)}`);
    if (names.has(stage.name)) fail(file, `${path}.name`, `duplicate stage name ${stage.name}`);
    if (stage.kind === "sample" && stage.endpoint !== undefined && stage.solution !== undefined)
      fail(file, `${path}.solution`, "not with endpoint: the served model name (endpoint.model) selects the adapter or steering vector");
    names.add(stage.name);
    return stage;
  });
  if (stages.length === 0) fail(file, "stages", "no stages");
  const judges = top.judges ?? {};
  stages.forEach((stage, i) => {
    const judge = (stage as { judge?: string }).judge;
    if (judge !== undefined && !(judge in judges))
      fail(file, `stages[${i}].judge`, `no judge named ${judge} under judges (declared: ${Object.keys(judges).join(", ") || "none"})`);
  });
  return {
    file,
    description: top.description ?? null,
    model: top.model ?? null,
    root: top.root ?? null,
    output_dir: top.output_dir ?? null,
    device: top.device ?? null,
    dtype: top.dtype ?? null,
    judges,
    report: top.report ?? {},
    stages,
  };
}

/** Reads and decodes a JSON or YAML experiment file. */
export function readExperiment(file: string): ExperimentFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    return fail(file, "", `cannot read (${(error as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    return fail(file, "", (error as Error).message.split("\n")[0]!);
  }
  return decodeExperiment(raw, file);
}
