/**
 * Running a planned experiment: stages in dependency order into one directory with a manifest.
 * A stage's key hashes its settings and the content of its inputs (files, or earlier stages'
 * outputs); a stage whose manifest record is complete with the same key and whose outputs exist is
 * skipped. A stage recorded as running or failed with the same key resumes in place (training from
 * its newest checkpoint, sampling and kl-data from the rows already written); a stage whose key
 * changed starts over in a clean directory. `only` and `from` force the named stages to run again.
 * A stage interrupted by a signal is recorded as `interrupted` (after keeping what it finished) and
 * resumes the same way. Input problems that can be seen before the run are refused before anything
 * is written (src/experiment/preflight.ts).
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { Cause, Effect, Exit } from "effect";
import { runPromise } from "../effect/run-promise.js";
import { attempt, type TaggedFailure } from "../train/attempt.js";
import { ExperimentInputError } from "./errors.js";
import { contentHash, valueHash } from "./hash.js";
import { type Manifest, readManifest, type StageRecord, writeManifest } from "./manifest.js";
import type { Plan, PlannedStage } from "./plan.js";
import type { Stage } from "./schema.js";
import { checkBeforeRun, stagePath } from "./preflight.js";
import { efficiencyStage, gradientsStage, runDirectionStage, significanceStage, stabilityStage } from "./stages/analyses.js";
import type { StageContext, StageProgram } from "./stages/context.js";
import { judgeStage, metricsStage, samplingStage } from "./stages/evaluate.js";
import { klDataStage, trainStage } from "./stages/train.js";

export type ExperimentEvent =
  | { type: "stage-start"; stage: string; kind: string; index: number; total: number; resumed: boolean }
  | { type: "stage-skip"; stage: string; kind: string; index: number; total: number }
  | { type: "stage-done"; stage: string; kind: string; wall_s: number; summary: unknown }
  | { type: "stage-failed"; stage: string; kind: string; error: string }
  | { type: "stage-interrupted"; stage: string; kind: string; wall_s: number }
  | { type: "progress"; stage: string; label: string; done: number; total: number }
  | { type: "log"; stage: string; line: string };

export interface RunExperimentOptions {
  /** Run only this stage (again, even if complete); its inputs must be complete. */
  only?: string;
  /** Run this stage and every stage after it in plan order (again, even if complete). */
  from?: string;
  onEvent?: (event: ExperimentEvent) => void;
}

export interface ExperimentSummary {
  dir: string;
  stages: {
    name: string;
    kind: string;
    status: "complete" | "skipped" | "failed" | "not-run";
    wall_s: number;
    summary?: unknown;
    error?: string;
  }[];
  ok: boolean;
}

/** The key of a stage: its settings (stage entry, resolved run config) and its inputs' content hashes. */
export function stageKey(p: PlannedStage): { key: string; inputs: StageRecord["inputs"] } {
  const inputs: StageRecord["inputs"] = {};
  for (const [field, input] of Object.entries(p.inputs)) inputs[field] = { path: input.path, hash: contentHash(input.path) };
  // Where a sample stage's server runs (URL, key variable, concurrency) does not change its rows; the served model does.
  const stage = p.stage.kind === "sample" && p.stage.endpoint ? { ...p.stage, endpoint: { model: p.stage.endpoint.model } } : p.stage;
  const settings = { stage, runConfig: p.runConfig, device: p.device, dtype: p.dtype };
  return { key: valueHash({ settings, inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.hash])) }), inputs };
}

/** A stage as an Effect program (direction and metrics are one synchronous block each). */
function stageProgram(p: PlannedStage, ctx: StageContext): StageProgram {
  const c = ctx as StageContext<never>;
  switch (p.stage.kind) {
    case "train":
      return trainStage(c, p.runConfig!);
    case "kl-data":
      return klDataStage(c);
    case "sample":
    case "steer":
    case "ablate":
      return samplingStage(c);
    case "judge":
      return judgeStage(c);
    case "metrics":
      return attempt(() => metricsStage(c));
    case "direction":
      return attempt(() => runDirectionStage(c));
    case "efficiency":
      return efficiencyStage(c);
    case "stability":
      return stabilityStage(c);
    case "significance":
      return significanceStage(c);
    case "gradients":
      return gradientsStage(c);
  }
}

function stageNames(plan: Plan): string[] {
  return plan.stages.map((p) => p.stage.name);
}

/** Which stages a run would force, given --only / --from. */
export function forcedStages(plan: Plan, options: Pick<RunExperimentOptions, "only" | "from">): Set<string> | null {
  const names = stageNames(plan);
  for (const flag of ["only", "from"] as const) {
    const name = options[flag];
    if (name !== undefined && !names.includes(name))
      throw new ExperimentInputError({
        message: `${plan.file}: --${flag} ${name}: no such stage (stages: ${names.join(", ")})`,
        file: plan.file,
        field: `--${flag}`,
      });
  }
  if (options.only !== undefined) return new Set([options.only]);
  if (options.from !== undefined) return new Set(names.slice(names.indexOf(options.from)));
  return null;
}

/** Why an experiment was refused before it ran: an ExperimentInputError, or a typed error of reading an input (a DatasetError...). */
export type ExperimentRefusal = ExperimentInputError | TaggedFailure;

/**
 * The experiment as an Effect program. Refusals (ExperimentInputError and the manifest's) fail it
 * before anything is written; a stage that fails is recorded as failed and the stages that do not
 * need it still run. Interrupted, the running stage keeps what it finished (its own finalizers), is
 * recorded as interrupted, and the program ends interrupted; running it again resumes that stage.
 */
export const experimentProgram = (plan: Plan, options: RunExperimentOptions = {}): Effect.Effect<ExperimentSummary, ExperimentRefusal> =>
  Effect.gen(function* () {
    const emit = options.onEvent ?? (() => {});
    // Refusals come before anything is written: unknown --only / --from, an unreadable manifest, bad inputs.
    const { forced, previousManifest } = yield* attempt(() => {
      const forced = forcedStages(plan, options);
      const previousManifest = readManifest(plan.dir);
      // Stages recorded complete (and not forced) are left out: they are skipped unless their inputs
      // changed, and then the stage itself makes the same checks when it runs.
      const willRun = (p: PlannedStage) =>
        (options.only === undefined || p.stage.name === options.only) &&
        (forced?.has(p.stage.name) === true || previousManifest?.stages[p.stage.name]?.status !== "complete");
      checkBeforeRun(plan, previousManifest, willRun, options.only);
      return { forced, previousManifest };
    });
    mkdirSync(plan.dir, { recursive: true });
    const manifest: Manifest = previousManifest ?? { experiment: plan.file, model: plan.model, stages: {}, order: [] };
    manifest.experiment = plan.file;
    manifest.model = plan.model;
    // Several experiment files may share one directory (the study's files do): keep the others' stages listed.
    manifest.order = [...stageNames(plan), ...manifest.order.filter((n) => !stageNames(plan).includes(n))];
    manifest.report = plan.experiment.report;
    const at = (p: string) => (isAbsolute(p) ? p : join(plan.root, p));
    const summary: ExperimentSummary = { dir: plan.dir, stages: [], ok: true };
    const total = plan.stages.length;
    for (const [index, p] of plan.stages.entries()) {
      // A signal received during a synchronous stage (an analysis) is acted on here, between stages.
      yield* Effect.yieldNow;
      const name = p.stage.name;
      const kind = p.stage.kind;
      if (options.only !== undefined && name !== options.only) {
        const rec = manifest.stages[name];
        summary.stages.push({ name, kind, status: rec?.status === "complete" ? "skipped" : "not-run", wall_s: 0 });
        continue;
      }
      const blocked = p.dependsOn.find((d) => manifest.stages[d]?.status !== "complete");
      if (blocked !== undefined) {
        summary.ok = false;
        summary.stages.push({ name, kind, status: "not-run", wall_s: 0, error: `input stage ${blocked} is not complete` });
        continue;
      }
      const { key, inputs } = stageKey(p);
      const previous = manifest.stages[name];
      const outputsExist = (rec: StageRecord) => rec.outputs.length > 0 && rec.outputs.every((o) => existsSync(o));
      if (previous && previous.status === "complete" && previous.key === key && outputsExist(previous) && !forced?.has(name)) {
        emit({ type: "stage-skip", stage: name, kind, index, total });
        summary.stages.push({ name, kind, status: "skipped", wall_s: previous.wall_s, summary: previous.summary });
        continue;
      }
      const resumed = previous !== undefined && previous.key === key && previous.status !== "complete" && !forced?.has(name);
      if (!resumed && existsSync(p.dir)) rmSync(p.dir, { recursive: true, force: true });
      mkdirSync(p.dir, { recursive: true });
      const record: StageRecord = {
        kind,
        key,
        status: "running",
        inputs,
        outputs: [],
        started: new Date().toISOString(),
        finished: null,
        wall_s: resumed ? previous!.wall_s : 0,
        attempts: (resumed ? previous!.attempts : 0) + 1,
      };
      manifest.stages[name] = record;
      writeManifest(plan.dir, manifest);
      emit({ type: "stage-start", stage: name, kind, index, total, resumed });
      const started = Date.now();
      const ctx: StageContext = {
        stage: p.stage as Stage,
        file: plan.file,
        path: stagePath(plan, p.stage),
        dir: p.dir,
        inputs: Object.fromEntries(Object.entries(p.inputs).map(([k, v]) => [k, v.path])),
        baseModel: p.baseModel,
        device: p.device,
        dtype: p.dtype,
        judges: plan.experiment.judges,
        at,
        log: (line) => emit({ type: "log", stage: name, line }),
        progress: (label, done, count) => emit({ type: "progress", stage: name, label, done, total: count }),
      };
      // Interrupted: the stage's own finalizers have kept what it finished; the manifest says it is to be resumed.
      const onInterrupt = Effect.sync(() => {
        record.status = "interrupted";
        record.wall_s += (Date.now() - started) / 1000;
        writeManifest(plan.dir, manifest);
        emit({ type: "stage-interrupted", stage: name, kind, wall_s: record.wall_s });
      });
      const exit = yield* Effect.exit(stageProgram(p, ctx).pipe(Effect.onInterrupt(() => onInterrupt)));
      if (Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)) return yield* Effect.failCause(exit.cause as Cause.Cause<never>);
      if (Exit.isSuccess(exit)) {
        record.status = "complete";
        record.outputs = exit.value.outputs;
        record.summary = exit.value.summary;
      } else {
        const error = Cause.squash(exit.cause) as { _tag?: string; message?: string };
        record.status = "failed";
        record.error = `${error?._tag ? `${error._tag}: ` : ""}${error?.message ?? String(error)}`;
      }
      record.wall_s += (Date.now() - started) / 1000;
      record.finished = new Date().toISOString();
      writeManifest(plan.dir, manifest);
      if (record.status === "failed") {
        emit({ type: "stage-failed", stage: name, kind, error: record.error! });
        summary.ok = false;
        summary.stages.push({ name, kind, status: "failed", wall_s: record.wall_s, error: record.error });
        continue;
      }
      emit({ type: "stage-done", stage: name, kind, wall_s: record.wall_s, summary: record.summary });
      summary.stages.push({ name, kind, status: "complete", wall_s: record.wall_s, summary: record.summary });
    }
    return summary;
  });

/** `experimentProgram` as a Promise (rejects with the typed refusal itself). */
export function runExperiment(plan: Plan, options: RunExperimentOptions = {}): Promise<ExperimentSummary> {
  return runPromise(experimentProgram(plan, options));
}
