/**
 * From a decoded experiment file to a plan: paths resolved (against `root`), the base model
 * (--model overrides), each stage's train config decoded, references checked (known stage, right
 * kind: a `model` must be a full-SFT train stage, a `solution` a LoRA or steering train stage, ...),
 * stages sorted so every stage runs after the stages it names (file order otherwise; cycles are
 * errors), and each stage's output path fixed. Problems that only matter when the stage runs (a data
 * file not there yet, a layer outside the model) are warnings, so `--dry-run` can check a file on
 * a machine without the data.
 */
import { existsSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { readFileSync } from "node:fs";
import { familyFor } from "../models/families.js";
import { readHfConfig } from "../models/hf-config.js";
import { type RunConfig, resolveRunConfig } from "../train/config.js";
import { ExperimentFileError, type ExperimentFile, type Stage, stageReferences } from "./schema.js";

export interface PlanOptions {
  /** Overrides the file's base model. */
  model?: string;
  /** Overrides the experiment directory. */
  outputDir?: string;
  device?: string;
}

export interface PlannedStage {
  stage: Stage;
  dir: string;
  /** Stage names this stage reads from. */
  dependsOn: string[];
  /** Input field -> resolved path (a file, or an earlier stage's output). */
  inputs: Record<string, { path: string; stage: string | null }>;
  /** The path other stages get when they name this stage. */
  output: string;
  /** For train stages: the run config with model, output_dir and paths resolved. */
  runConfig: RunConfig | null;
  baseModel: string;
  device: string;
  dtype: "f32" | "bf16" | "f16";
}

export interface Plan {
  file: string;
  root: string;
  dir: string;
  model: string;
  family: string | null;
  experiment: ExperimentFile;
  stages: PlannedStage[];
  warnings: string[];
}

const RESULT_KINDS = ["sample", "steer", "ablate", "judge"];

/** What a reference in `field` may point at, and the output it then resolves to. */
function expectedFor(field: string): { kinds: string[]; methods?: RunConfig["method"][]; what: string } {
  const head = field.split(/[.[]/)[0]!;
  switch (head) {
    case "model":
      return { kinds: ["train"], methods: ["full"], what: "a full-SFT train stage" };
    case "solution":
    case "solutions":
      return { kinds: ["train"], methods: ["lora", "steering"], what: "a LoRA or steering-vector train stage" };
    case "vectors":
    case "runs":
      return { kinds: ["train"], methods: ["steering"], what: "a steering-vector train stage" };
    case "results":
    case "agreement":
      return { kinds: RESULT_KINDS, what: "a sample, steer, ablate or judge stage" };
    case "direction":
    case "directions":
    case "compare":
      return { kinds: ["direction"], what: "a direction stage" };
    case "kl_data":
      return { kinds: ["kl-data"], what: "a kl-data stage" };
    case "init_from":
      return { kinds: ["train"], methods: ["lora", "steering"], what: "a LoRA or steering-vector train stage" };
    default:
      return { kinds: [], what: "?" };
  }
}

function outputOf(stage: Stage, dir: string, runConfig: RunConfig | null): string {
  switch (stage.kind) {
    case "train":
      return runConfig!.method === "lora"
        ? join(dir, "run", "adapter")
        : runConfig!.method === "steering"
          ? join(dir, "run", "steering_vector.safetensors")
          : join(dir, "run", "model");
    case "kl-data":
      return join(dir, "kl.jsonl");
    case "sample":
    case "steer":
    case "ablate":
    case "judge":
      return join(dir, "results.jsonl");
    case "direction":
      return join(dir, "direction.safetensors");
    default:
      return join(dir, `${stage.kind}.json`);
  }
}

/** Reads a train stage's config (inline or a file) into a run config rooted in the stage directory. */
function trainConfig(
  stage: Extract<Stage, { kind: "train" }>,
  path: string,
  file: string,
  at: (p: string) => string,
  model: string,
  dir: string,
  klData: string | null,
  device: string | null,
  initFrom: string | null,
): RunConfig {
  let raw: Record<string, unknown>;
  let source = `${file}: ${path}.config`;
  if (typeof stage.config === "string") {
    const configFile = at(stage.config);
    source = configFile;
    let text: string;
    try {
      text = readFileSync(configFile, "utf8");
    } catch (error) {
      throw new ExperimentFileError({
        message: `${file}: ${path}.config: cannot read ${configFile} (${(error as Error).message})`,
        file,
        path: `${path}.config`,
      });
    }
    try {
      raw = (configFile.endsWith(".json") ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown>;
    } catch (error) {
      throw new ExperimentFileError({ message: `${configFile}: ${(error as Error).message.split("\n")[0]}`, file: configFile, path: "" });
    }
    if (!raw || typeof raw !== "object")
      throw new ExperimentFileError({ message: `${configFile}: not an object`, file: configFile, path: "" });
  } else raw = stage.config as Record<string, unknown>;
  // A config file's relative paths are relative to that file (as for `emlab train`); inline ones to the experiment's root.
  const rel = typeof stage.config === "string" ? (p: string) => (isAbsolute(p) ? p : resolve(dirname(source), p)) : at;
  const data = (raw.data ?? {}) as Record<string, unknown>;
  const kl = raw.kl as Record<string, unknown> | undefined;
  if (klData !== null && !kl)
    throw new ExperimentFileError({
      message: `${file}: ${path}.kl_data: the train config has no kl section to take it`,
      file,
      path: `${path}.kl_data`,
    });
  const training = { ...((raw.training ?? {}) as Record<string, unknown>) };
  if (device !== null) training.device = device;
  const filled = {
    ...raw,
    model,
    output_dir: join(dir, "run"),
    data: {
      ...data,
      ...(typeof data.train === "string" ? { train: rel(data.train) } : {}),
      ...(typeof data.eval === "string" ? { eval: rel(data.eval) } : {}),
    },
    ...(kl ? { kl: { ...kl, data: klData ?? (typeof kl.data === "string" ? rel(kl.data) : kl.data) } } : {}),
    ...(initFrom !== null ? { init_from: initFrom } : typeof raw.init_from === "string" ? { init_from: rel(raw.init_from) } : {}),
    training,
  };
  try {
    return resolveRunConfig(filled, source);
  } catch (error) {
    throw new ExperimentFileError({ message: `${(error as Error).message}`, file: source, path: `${path}.config` });
  }
}

export function planExperiment(experiment: ExperimentFile, options: PlanOptions = {}): Plan {
  const file = experiment.file;
  const root = resolve(dirname(file), experiment.root ?? ".");
  const at = (p: string) => (isAbsolute(p) ? p : join(root, p));
  const fail = (path: string, problem: string): never => {
    throw new ExperimentFileError({ message: `${file}: ${path ? `${path}: ` : ""}${problem}`, file, path });
  };
  const modelText = options.model ?? experiment.model;
  if (modelText === undefined || modelText === null) fail("model", "no base model: set model in the file or pass --model DIR");
  const model = options.model ? resolve(options.model) : at(modelText!);
  const warnings: string[] = [];
  let family: string | null = null;
  let layers: number | null = null;
  if (!existsSync(join(model, "config.json")))
    warnings.push(`base model ${model}: no config.json (the run needs a Hugging Face model directory)`);
  else {
    const config = readHfConfig(model);
    family = familyFor(config, join(model, "config.json")).name;
    layers = (config as { num_hidden_layers?: number }).num_hidden_layers ?? null;
  }
  const dir = options.outputDir ? resolve(options.outputDir) : at(experiment.output_dir ?? join("runs", basename(file, extname(file))));
  const byName = new Map(experiment.stages.map((s, i) => [s.name, { stage: s, index: i }]));

  // Train configs first (their method decides what their output is).
  const runConfigs = new Map<string, RunConfig>();
  const device = options.device ?? experiment.device ?? null;
  const baseOf = (s: Stage): string =>
    s.model && byName.has(s.model) ? join(dir, "stages", s.model, "run", "model") : s.model ? at(s.model) : model;
  experiment.stages.forEach((s, i) => {
    if (s.kind !== "train") return;
    const klRef = s.kl_data ?? null;
    const klPath = klRef === null ? null : byName.has(klRef) ? join(dir, "stages", klRef, "kl.jsonl") : at(klRef);
    // init_from: an earlier train stage's artefact (the run continues that solution), or a path.
    const initRef = s.init_from ?? null;
    let initPath: string | null = null;
    if (initRef !== null) {
      const target = byName.get(initRef);
      if (!target) initPath = at(initRef);
      else {
        const targetConfig = runConfigs.get(initRef);
        if (!targetConfig) fail(`stages[${i}].init_from`, `${initRef} must be a train stage listed before ${s.name}`);
        initPath = outputOf(target.stage, join(dir, "stages", initRef), targetConfig!);
      }
    }
    runConfigs.set(
      s.name,
      trainConfig(s, `stages[${i}]`, file, at, baseOf(s), join(dir, "stages", s.name), klPath, s.device ?? device, initPath),
    );
  });

  const planned = new Map<string, PlannedStage>();
  experiment.stages.forEach((s, i) => {
    const stageDir = join(dir, "stages", s.name);
    const inputs: PlannedStage["inputs"] = {};
    const dependsOn = new Set<string>();
    for (const [field, ref] of stageReferences(s)) {
      const target = byName.get(ref);
      if (!target) {
        inputs[field] = { path: at(ref), stage: null };
        continue;
      }
      if (ref === s.name) fail(`stages[${i}].${field}`, "a stage cannot read its own output");
      const expected = expectedFor(field);
      const method = runConfigs.get(ref)?.method;
      if (!expected.kinds.includes(target.stage.kind) || (expected.methods && method && !expected.methods.includes(method))) {
        fail(`stages[${i}].${field}`, `${ref} is a ${target.stage.kind}${method ? ` (${method})` : ""} stage; expected ${expected.what}`);
      }
      dependsOn.add(ref);
      const targetDir = join(dir, "stages", ref);
      // Gradient analyses read the whole run directory (its checkpoints), not only the final vector.
      const path = field.startsWith("runs.") ? join(targetDir, "run") : outputOf(target.stage, targetDir, runConfigs.get(ref) ?? null);
      inputs[field] = { path, stage: ref };
    }
    const rc = runConfigs.get(s.name) ?? null;
    if (rc) {
      inputs["config.data.train"] = { path: rc.data.train, stage: null };
      if (rc.kl)
        inputs["config.kl.data"] = { path: rc.kl.data, stage: s.kind === "train" && s.kl_data && byName.has(s.kl_data) ? s.kl_data : null };
      if (!s.model || !byName.has(s.model)) inputs.model = { path: rc.model, stage: null };
    } else if (!inputs.model) inputs.model = { path: baseOf(s), stage: null };
    for (const key of ["questions", "prompts", "data", "texts", "judge_prompts"] as const) {
      const value = (s as Record<string, unknown>)[key];
      if (typeof value === "string") inputs[key] = { path: at(value), stage: null };
    }
    for (const [field, input] of Object.entries(inputs)) {
      if (input.stage === null && !existsSync(input.path)) warnings.push(`${s.name}: ${field} ${input.path} does not exist`);
    }
    if (layers !== null) {
      const checkLayer = (what: string, l: number | undefined) => {
        if (l !== undefined && (l < 0 || l >= layers!))
          warnings.push(`${s.name}: ${what} ${l} is outside layers 0..${layers! - 1} of ${model}`);
      };
      if (rc?.steering) checkLayer("steering layer", rc.steering.layer);
      for (const l of rc?.lora.flatMap((x) => x.layers_to_transform ?? []) ?? []) checkLayer("LoRA layer", l);
      if ("layers" in s && Array.isArray(s.layers)) for (const l of s.layers) checkLayer("layer", l);
      if (s.kind === "significance") checkLayer("layer", s.layer);
    }
    planned.set(s.name, {
      stage: s,
      dir: stageDir,
      dependsOn: [...dependsOn],
      inputs,
      output: outputOf(s, stageDir, rc),
      runConfig: rc,
      baseModel: rc?.model ?? baseOf(s),
      device: rc?.training.device ?? s.device ?? device ?? "cpu",
      dtype: rc?.training.dtype ?? s.dtype ?? experiment.dtype ?? "f32",
    });
  });

  // Dependency order: repeatedly take the first stage (in file order) whose inputs are all placed.
  const ordered: PlannedStage[] = [];
  const placed = new Set<string>();
  const pending = [...planned.values()];
  while (pending.length > 0) {
    const next = pending.findIndex((p) => p.dependsOn.every((d) => placed.has(d)));
    if (next < 0) fail("stages", `circular references among ${pending.map((p) => p.stage.name).join(", ")}`);
    const [p] = pending.splice(next, 1);
    ordered.push(p!);
    placed.add(p!.stage.name);
  }
  return { file, root, dir, model, family, experiment, stages: ordered, warnings };
}
