/**
 * The checks the experiment runner makes before it writes anything, and the same checks the stages
 * make when they run: prompts and documents files that hold none (or an empty one), a solution path
 * that is neither a PEFT adapter directory nor a steering-vector file, a weight-space ablation of a
 * solution that is not a LoRA adapter, gradients over a run that is not a steering-vector run, API
 * and local judges without prompts, an endpoint whose key variable is unset or whose concurrency is
 * not a positive integer, and (with --only) an input stage whose output is gone. Each fails with an
 * ExperimentInputError naming the file and the field. Inputs produced by stages that have not run
 * yet are checked by their stage when it runs.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readChatDataset } from "../train/data.js";
import { ExperimentInputError } from "./errors.js";
import type { Manifest } from "./manifest.js";
import type { Plan, PlannedStage } from "./plan.js";
import type { JudgeSpec, Stage, StageOf } from "./schema.js";

/** `stages[i]` of a stage in the experiment file (the path its fields are named by). */
export const stagePath = (plan: Plan, stage: Stage): string => `stages[${plan.experiment.stages.indexOf(stage)}]`;

const refuse = (file: string, field: string, message: string): never => {
  throw new ExperimentInputError({ message, file, field });
};

/** Prompts: a chat JSONL (its first user turn) or a text file with one prompt per line; none is an error. */
export function readPrompts(file: string, field: string, limit = Number.POSITIVE_INFINITY): string[] {
  const all = file.endsWith(".jsonl")
    ? readChatDataset(file).examples.map((e) => e.messages.find((m) => m.role === "user")?.content ?? "")
    : readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l.trim() !== "");
  const prompts = all.slice(0, limit);
  if (prompts.length === 0) refuse(file, field, `${file}: ${field}: no prompts`);
  return prompts;
}

/** Documents: `.jsonl` rows with a `text` field, or one document per line; an empty document or none is an error. */
export function readTexts(file: string, field: string, max: number): string[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const texts: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let text: unknown = line;
    if (file.endsWith(".jsonl")) {
      try {
        text = (JSON.parse(line) as { text?: unknown } | null)?.text;
      } catch (error) {
        refuse(file, field, `${file}:${i + 1}: ${field}: not JSON (${(error as Error).message})`);
      }
    }
    if (typeof text !== "string" || text.trim() === "") refuse(file, field, `${file}:${i + 1}: ${field}: empty document`);
    texts.push((text as string).slice(0, 2000));
  });
  if (texts.length === 0) refuse(file, field, `${file}: ${field}: no documents`);
  return texts.slice(0, max);
}

/** A PEFT adapter directory (it holds adapter_config.json). */
export const isAdapterDir = (path: string): boolean =>
  existsSync(path) && statSync(path).isDirectory() && existsSync(join(path, "adapter_config.json"));

/** A solution path must be a PEFT adapter directory or a steering-vector file. */
export function checkSolutionPath(path: string, field: string): "adapter" | "steering" {
  if (isAdapterDir(path)) return "adapter";
  if (!existsSync(path) || statSync(path).isDirectory())
    refuse(path, field, `${path}: ${field}: no such solution (a PEFT adapter directory or a steering-vector .safetensors)`);
  return "steering";
}

/** The environment variable an endpoint's key comes from (null: none), checked with the concurrency. */
export function endpointKey(stage: StageOf<"sample">, file: string, path: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const endpoint = stage.endpoint!;
  if (endpoint.concurrency !== undefined && !(Number.isInteger(endpoint.concurrency) && endpoint.concurrency >= 1))
    refuse(
      file,
      `${path}.endpoint.concurrency`,
      `${file}: ${path}.endpoint.concurrency: must be a positive integer, got ${endpoint.concurrency}`,
    );
  if (endpoint.api_key_env === undefined) return null;
  const key = env[endpoint.api_key_env] ?? "";
  if (key === "")
    refuse(
      file,
      `${path}.endpoint.api_key_env`,
      `${file}: ${path}.endpoint.api_key_env: the environment variable ${endpoint.api_key_env} is not set or empty`,
    );
  return key;
}

/** API and local judges fill judge prompts: they need the question set or a judge_prompts file. */
export function checkJudgePrompts(
  spec: JudgeSpec,
  questionsFile: string | null,
  judgePromptsFile: string | null,
  file: string,
  path: string,
): void {
  if (spec.kind === "function" || questionsFile !== null || judgePromptsFile) return;
  refuse(
    file,
    `${path}.questions`,
    `${file}: ${path}.questions: ${spec.kind === "local" ? "a local" : "an API"} judge needs the question set (questions) or a judge_prompts file (its judge prompts)`,
  );
}

/** A gradients stage follows steering-vector runs: the run directory's resolved config says which method it trained. */
export function checkSteeringRun(runDir: string, field: string): { layer: number; site: "down_proj" | "resid_post"; alpha: number } {
  const configFile = join(runDir, "config.resolved.json");
  let config: { method?: string; steering?: { layer: number; site: "down_proj" | "resid_post"; alpha: number } };
  try {
    config = JSON.parse(readFileSync(configFile, "utf8")) as typeof config;
  } catch (error) {
    return refuse(configFile, field, `${configFile}: ${field}: not a training run's resolved config (${(error as Error).message})`);
  }
  if (config.method !== "steering" || !config.steering)
    refuse(configFile, field, `${configFile}: ${field}: gradients follows steering-vector runs (this run trained ${config.method})`);
  return config.steering!;
}

/** Weight-space ablation edits LoRA B matrices: its solution must be a LoRA adapter. */
export const weightSpaceNeedsLora = (file: string, field: string, solution: string): never =>
  refuse(file, field, `${file}: ${field}: weight_space ablation needs a LoRA solution (${solution} is not a PEFT adapter)`);

/**
 * Every check that can be made before the run: inputs that are files (not earlier stages' outputs),
 * and with `only` the outputs of the stages it reads. Throws the first ExperimentInputError.
 */
export function checkBeforeRun(plan: Plan, manifest: Manifest | null, runs: (p: PlannedStage) => boolean, only: string | undefined): void {
  const byName = new Map(plan.stages.map((p) => [p.stage.name, p]));
  for (const p of plan.stages) {
    if (!runs(p)) continue;
    const s = p.stage;
    const path = stagePath(plan, s);
    const input = (field: string) => p.inputs[field];
    // A file given in the experiment, or (with --only) the output of a complete stage that will not run again.
    const ready = (field: string) => {
      const i = input(field);
      if (!i) return null;
      if (i.stage === null) return existsSync(i.path) ? i.path : null;
      return only !== undefined && manifest?.stages[i.stage]?.status === "complete" ? i.path : null;
    };
    for (const [field, i] of Object.entries(p.inputs)) {
      if (i.stage === null || only === undefined || manifest?.stages[i.stage]?.status !== "complete") continue;
      if (!existsSync(i.path))
        refuse(
          i.path,
          `${path}.${field}`,
          field === "solution" || field.startsWith("solutions.")
            ? `${i.path}: ${path}.${field}: no such solution (the output of stage ${i.stage} is gone; run it again)`
            : `${i.path}: ${path}.${field}: the output of stage ${i.stage} is gone; run it again`,
        );
    }
    for (const field of Object.keys(p.inputs).filter((f) => f === "solution" || f.startsWith("solutions."))) {
      const at = ready(field);
      if (at !== null) checkSolutionPath(at, `${path}.${field}`);
    }
    switch (s.kind) {
      case "kl-data": {
        const at = ready("prompts");
        if (at !== null) readPrompts(at, `${path}.prompts`, s.limit);
        break;
      }
      case "significance": {
        const at = ready("texts");
        if (at !== null) readTexts(at, `${path}.texts`, s.max_texts ?? 100);
        break;
      }
      case "sample":
        if (s.endpoint !== undefined) endpointKey(s, plan.file, path);
        break;
      case "ablate":
        if (s.weight_space) {
          const solution = input("solution");
          if (!solution) weightSpaceNeedsLora(plan.file, `${path}.solution`, "no solution");
          const trained = solution!.stage !== null ? byName.get(solution!.stage)?.runConfig?.method : null;
          if (trained !== undefined && trained !== null && trained !== "lora")
            weightSpaceNeedsLora(plan.file, `${path}.solution`, solution!.stage!);
          const at = ready("solution");
          if (at !== null && checkSolutionPath(at, `${path}.solution`) !== "adapter")
            weightSpaceNeedsLora(plan.file, `${path}.solution`, at);
        }
        break;
      case "gradients":
        for (const field of Object.keys(p.inputs).filter((f) => f.startsWith("runs."))) {
          const at = ready(field);
          if (at !== null) checkSteeringRun(at, `${path}.${field}`);
        }
        break;
      case "judge": {
        const spec = plan.experiment.judges[s.judge];
        if (spec) checkJudgePrompts(spec, s.questions ?? null, null, plan.file, path);
        break;
      }
    }
  }
}
