/**
 * Evaluation stages: sample (+ judge) answers to a question set with the base model or a solution,
 * steer (the base model with a direction added) and ablate (a solution with the direction projected
 * out), judge (an earlier stage's rows again, with another judge), and metrics (EM and coherent rates
 * with bootstrap CIs per condition and question, and judge agreement). Sampling resumes exactly
 * (the results file is completed, never duplicated); judging skips rows that already have scores.
 * Sampling yields to the event loop between decode steps; interrupted, a stage keeps every row appended and
 * every score received.
 */
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { ablate, ablateLoraB, type DirectionRows, randomControl, steer } from "../../analysis/interventions.js";
import { loadDirection } from "../../analysis/files.js";
import type { HookHandle } from "../../hooks/registry.js";
import { emReport, judgeAgreement } from "../../eval/metrics.js";
import { loadJudges, loadQuestions, type Question } from "../../eval/questions.js";
import { ResultsFile, scoreOf } from "../../eval/results.js";
import { sampleChunksEffect } from "../../eval/sample.js";
import { cat, keep, type Tensor, tidy } from "../../tensor/index.js";
import { attempt } from "../../train/attempt.js";
import { checkJudgePrompts, weightSpaceNeedsLora } from "../preflight.js";
import type { StageOf } from "../schema.js";
import type { StageContext, StageOutcome, StageProgram } from "./context.js";
import { sampleThroughEndpoint } from "./endpoint.js";
import { judgeResults } from "./judging.js";
import { scopedOpenModel } from "./models.js";
import { type SamplingStage, stageSampleOptions } from "./sample-options.js";

function layersOf(spec: readonly number[] | "all", count: number): number[] {
  return spec === "all" ? Array.from({ length: count }, (_, i) => i) : [...spec];
}

/** The direction to intervene with, or same-norm random rows when `random_control` is set. */
function directionFor(file: string, device: string, randomSeed: number | undefined): Tensor {
  const direction = loadDirection(file, device as never);
  if (randomSeed === undefined) return direction;
  const random = keep(
    tidy(() =>
      direction.ndim === 2
        ? cat(
            Array.from({ length: direction.size(0) }, (_, l) => randomControl(direction.select(0, l), randomSeed + l).unsqueeze(0)),
            0,
          )
        : randomControl(direction, randomSeed),
    ),
  );
  direction.dispose();
  return random;
}

export const samplingStage = (ctx: StageContext<SamplingStage>): StageProgram =>
  Effect.gen(function* () {
    const s = ctx.stage;
    const out = join(ctx.dir, "results.jsonl");
    const { questions, results } = yield* attempt(() => ({
      questions: loadQuestions(ctx.inputs.questions!, { judges: ctx.inputs.judge_prompts ? loadJudges(ctx.inputs.judge_prompts) : {} }),
      results: ResultsFile.resume(out),
    }));
    if (results.setAside)
      ctx.log(`${out}: line ${results.setAside.line}: a record cut short by an interrupted write was moved to ${results.setAside.file}`);
    const kept = (before: number) =>
      Effect.sync(() => ctx.log(`kept ${results.rows.length} rows in ${out} (${results.rows.length - before} sampled by this run)`));
    const before = results.rows.length;
    if (s.kind === "sample" && s.endpoint !== undefined)
      yield* sampleThroughEndpoint(ctx as StageContext<StageOf<"sample">>, questions, results, out).pipe(
        Effect.onInterrupt(() => kept(before)),
      );
    // The model (and solution, direction, hooks) are freed when sampling ends, before judging (which may load a judge model).
    else yield* sampleLocally(ctx, questions, results, out).pipe(Effect.onInterrupt(() => kept(before)));
    return yield* judgeAndReport(ctx, results, out);
  });

/** Samples the stage's missing rows with the model (and solution, steering or ablation) loaded in this program's Scope. */
const sampleLocally = (ctx: StageContext<SamplingStage>, questions: readonly Question[], results: ResultsFile, out: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const s = ctx.stage;
      const opened = yield* scopedOpenModel(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype, solution: ctx.inputs.solution ?? null });
      const { model, tokenizer } = opened;
      if (s.kind === "steer" || s.kind === "ablate") {
        const direction = yield* Effect.acquireRelease(
          attempt(() => directionFor(ctx.inputs.direction!, ctx.device, s.random_control)),
          (d) => Effect.sync(() => d.dispose()),
        );
        const layers = layersOf(s.layers, model.spec.layers.length);
        const rows: DirectionRows = s.direction_layer === undefined ? "per-layer" : { shared: s.direction_layer };
        if (s.kind === "ablate" && s.weight_space) {
          // Weight space (the study's): down_proj B <- B - d_hat d_hat^T B, renormalised, in memory only.
          const adapter = opened.solution?.adapter;
          if (!adapter)
            return yield* attempt(() => weightSpaceNeedsLora(ctx.file, `${ctx.path}.solution`, ctx.inputs.solution ?? "no solution"));
          ctx.log(
            `removed the direction from ${ablateLoraB(adapter, direction, { layers: s.layers === "all" ? undefined : layers, rows })} LoRA B matrices`,
          );
        } else
          yield* Effect.acquireRelease(
            attempt(() =>
              s.kind === "steer"
                ? steer(model.decoder, direction, layers, s.scale ?? 8, rows)
                : ablate(model.decoder, direction, layers, rows),
            ),
            (handles: HookHandle[]) => Effect.sync(() => handles.forEach((h) => h.remove())),
          );
      }
      // Generation yields to the event loop between decode steps, so a signal stops it within one step;
      // every finished chunk is already appended to the file.
      const added = yield* sampleChunksEffect(model, tokenizer, questions, results, stageSampleOptions(ctx));
      ctx.log(`sampled ${added} new rows (${results.rows.length} in ${out})`);
    }),
  );

/** Judges a sampling stage's rows (when it names a judge) and summarises them. */
const judgeAndReport = (ctx: StageContext<SamplingStage>, results: ResultsFile, out: string): StageProgram =>
  Effect.gen(function* () {
    const s = ctx.stage;
    const judged =
      s.judge === undefined
        ? null
        : yield* judgeResults(results, {
            spec: ctx.judges[s.judge]!,
            names: s.judge_names ?? ["aligned", "coherent"],
            questionsFile: ctx.inputs.questions!,
            judgePromptsFile: ctx.inputs.judge_prompts ?? null,
            cacheDir: ctx.dir,
            at: ctx.at,
            progress: ctx.progress,
            log: ctx.log,
            file: ctx.file,
            path: ctx.path,
          });
    const report = emReport(results.rows);
    return { outputs: [out], summary: { rows: results.rows.length, judged, em_rate: report.em_rate, coherent_rate: report.coherent_rate } };
  });

export const judgeStage = (ctx: StageContext<StageOf<"judge">>): StageProgram =>
  Effect.gen(function* () {
    const s = ctx.stage;
    const out = join(ctx.dir, "results.jsonl");
    const questionsFile = s.questions !== undefined ? ctx.at(s.questions) : null;
    const spec = ctx.judges[s.judge]!;
    const results = yield* attempt(() => {
      checkJudgePrompts(spec, questionsFile, null, ctx.file, ctx.path);
      if (!existsSync(out)) {
        // Start from the answers only: the other judge's columns are not copied.
        const source = ResultsFile.read(ctx.inputs.results!);
        rmSync(join(ctx.dir, "results.partial.jsonl"), { force: true });
        const fresh = ResultsFile.resume(join(ctx.dir, "results.partial.jsonl"));
        fresh.rewrite(source.rows.map((r) => ({ response: r.response, question: r.question, question_id: r.question_id })));
        // A rename, not a copy: a kill can never leave a partial results file that resume would then cut short.
        renameSync(fresh.path, out);
      }
      return ResultsFile.resume(out);
    });
    const judged = yield* judgeResults(results, {
      spec,
      names: s.judge_names ?? ["aligned", "coherent"],
      questionsFile,
      judgePromptsFile: null,
      cacheDir: ctx.dir,
      at: ctx.at,
      progress: ctx.progress,
      log: ctx.log,
      file: ctx.file,
      path: ctx.path,
    });
    return { outputs: [out], summary: judged };
  });

export function metricsStage(ctx: StageContext<StageOf<"metrics">>): StageOutcome {
  const s = ctx.stage;
  const criteria = {
    alignedThreshold: s.aligned_threshold,
    alignedInclusive: s.aligned_inclusive,
    coherentThreshold: s.coherent_threshold,
  };
  const conditions: Record<string, unknown> = {};
  const scatter: Record<string, { question_id: string; aligned: number; coherent: number }[]> = {};
  for (const label of Object.keys(s.results)) {
    const rows = ResultsFile.read(ctx.inputs[`results.${label}`]!).rows;
    conditions[label] = emReport(rows, criteria);
    scatter[label] = rows
      .map((r) => ({ question_id: r.question_id, aligned: scoreOf(r, "aligned"), coherent: scoreOf(r, "coherent") }))
      .filter((p): p is { question_id: string; aligned: number; coherent: number } => p.aligned !== null && p.coherent !== null);
  }
  const agreement = (s.agreement ?? []).map((pair, i) => {
    const read = (field: string) =>
      ResultsFile.read(ctx.inputs[field]!).rows.map((r) => ({ aligned: scoreOf(r, "aligned"), coherent: scoreOf(r, "coherent") }));
    const a = read(`agreement[${i}].a`);
    const b = read(`agreement[${i}].b`);
    return {
      a: pair.a,
      b: pair.b,
      ...judgeAgreement(a, b, criteria),
      scores: a.map((x, k) => ({ a: x.aligned, b: b[k]?.aligned ?? null })).filter((p) => p.a !== null && p.b !== null),
    };
  });
  const out = join(ctx.dir, "metrics.json");
  writeFileSync(out, `${JSON.stringify({ criteria, conditions, scatter, agreement }, null, 1)}\n`);
  const headline = Object.fromEntries(
    Object.entries(conditions).map(([k, v]) => [
      k,
      { em_rate: (v as { em_rate: number }).em_rate, coherent_rate: (v as { coherent_rate: number }).coherent_rate },
    ]),
  );
  return { outputs: [out], summary: headline };
}
