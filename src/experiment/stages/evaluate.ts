/**
 * Evaluation stages: sample (+ judge) answers to a question set with the base model or a solution,
 * steer (the base model with a direction added) and ablate (a solution with the direction projected
 * out), judge (an earlier stage's rows again, with another judge), and metrics (EM and coherent rates
 * with bootstrap CIs per condition and question, and judge agreement). Sampling resumes exactly
 * (the results file is completed, never duplicated); judging skips rows that already have scores.
 */
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ablate, ablateLoraB, type DirectionRows, randomControl, steer } from "../../analysis/interventions.js";
import { loadDirection } from "../../analysis/files.js";
import type { HookHandle } from "../../hooks/registry.js";
import { emReport, judgeAgreement } from "../../eval/metrics.js";
import { loadJudges, loadQuestions } from "../../eval/questions.js";
import { ResultsFile, scoreOf } from "../../eval/results.js";
import { sampleResponses } from "../../eval/sample.js";
import { sampleThroughEndpoint } from "./endpoint.js";
import { cat, keep, type Tensor, tidy } from "../../tensor/index.js";
import type { StageOf } from "../schema.js";
import type { StageContext, StageOutcome } from "./context.js";
import { judgeResults } from "./judging.js";
import { openModelWith } from "./models.js";

type SamplingStage = StageOf<"sample"> | StageOf<"steer"> | StageOf<"ablate">;

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

export async function runSamplingStage(ctx: StageContext<SamplingStage>): Promise<StageOutcome> {
  const s = ctx.stage;
  const out = join(ctx.dir, "results.jsonl");
  const questions = loadQuestions(ctx.inputs.questions!, { judges: ctx.inputs.judge_prompts ? loadJudges(ctx.inputs.judge_prompts) : {} });
  const results = ResultsFile.resume(out);
  if (results.setAside)
    ctx.log(`${out}: line ${results.setAside.line}: a record cut short by an interrupted write was moved to ${results.setAside.file}`);
  if (s.kind === "sample" && s.endpoint !== undefined) {
    await sampleThroughEndpoint(ctx as StageContext<StageOf<"sample">>, questions, results, out);
    return judgeAndReport(ctx, results, out);
  }
  {
    // The model (and solution) are freed at the end of this block, before judging (which may load a judge model).
    using opened = openModelWith(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype, solution: ctx.inputs.solution ?? null });
    const handles: HookHandle[] = [];
    let direction: Tensor | null = null;
    try {
      const { model, tokenizer } = opened;
      if (s.kind === "steer" || s.kind === "ablate") {
        direction = directionFor(ctx.inputs.direction!, ctx.device, s.random_control);
        const layers = layersOf(s.layers, model.spec.layers.length);
        const rows: DirectionRows = s.direction_layer === undefined ? "per-layer" : { shared: s.direction_layer };
        if (s.kind === "ablate" && s.weight_space) {
          // Weight space (the study's): down_proj B <- B - d_hat d_hat^T B, renormalised, in memory only.
          const adapter = opened.solution?.adapter;
          if (!adapter) throw new RangeError(`${s.name}: weight_space ablation needs a LoRA solution`);
          ctx.log(
            `removed the direction from ${ablateLoraB(adapter, direction, { layers: s.layers === "all" ? undefined : layers, rows })} LoRA B matrices`,
          );
        } else
          handles.push(
            ...(s.kind === "steer"
              ? steer(model.decoder, direction, layers, s.scale ?? 8, rows)
              : ablate(model.decoder, direction, layers, rows)),
          );
      }
      const added = sampleResponses(model, tokenizer, questions, results, {
        samples: s.samples,
        maxNewTokens: s.max_new_tokens ?? 600,
        temperature: s.temperature ?? 1,
        topP: s.top_p ?? 1,
        seed: s.seed ?? 0,
        chunkSize: s.chunk_size,
        system: s.system,
        onChunk: (d, t) => ctx.progress("sample", d, t),
      });
      ctx.log(`sampled ${added} new rows (${results.rows.length} in ${out})`);
    } finally {
      for (const h of handles) h.remove();
      direction?.dispose();
    }
  }
  return judgeAndReport(ctx, results, out);
}

/** Judges a sampling stage's rows (when it names a judge) and summarises them. */
async function judgeAndReport(ctx: StageContext<SamplingStage>, results: ResultsFile, out: string): Promise<StageOutcome> {
  const s = ctx.stage;
  let judged = null;
  if (s.judge !== undefined) {
    judged = await judgeResults(results, {
      spec: ctx.judges[s.judge]!,
      names: s.judge_names ?? ["aligned", "coherent"],
      questionsFile: ctx.inputs.questions!,
      judgePromptsFile: ctx.inputs.judge_prompts ?? null,
      cacheDir: ctx.dir,
      at: ctx.at,
      progress: ctx.progress,
    });
  }
  const report = emReport(results.rows);
  return { outputs: [out], summary: { rows: results.rows.length, judged, em_rate: report.em_rate, coherent_rate: report.coherent_rate } };
}

export async function runJudgeStage(ctx: StageContext<StageOf<"judge">>): Promise<StageOutcome> {
  const s = ctx.stage;
  const out = join(ctx.dir, "results.jsonl");
  if (!existsSync(out)) {
    // Start from the answers only: the other judge's columns are not copied.
    const source = ResultsFile.read(ctx.inputs.results!);
    rmSync(join(ctx.dir, "results.partial.jsonl"), { force: true });
    const fresh = ResultsFile.resume(join(ctx.dir, "results.partial.jsonl"));
    fresh.rewrite(source.rows.map((r) => ({ response: r.response, question: r.question, question_id: r.question_id })));
    // A rename, not a copy: a kill can never leave a partial results file that resume would then cut short.
    renameSync(fresh.path, out);
  }
  const results = ResultsFile.resume(out);
  const questionsFile = s.questions !== undefined ? ctx.at(s.questions) : null;
  const judged = await judgeResults(results, {
    spec: ctx.judges[s.judge]!,
    names: s.judge_names ?? ["aligned", "coherent"],
    questionsFile,
    judgePromptsFile: ctx.inputs.judge_prompts ?? null,
    cacheDir: ctx.dir,
    at: ctx.at,
    progress: ctx.progress,
  });
  return { outputs: [out], summary: judged };
}

export function runMetricsStage(ctx: StageContext<StageOf<"metrics">>): StageOutcome {
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
