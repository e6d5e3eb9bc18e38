/**
 * The evaluation recipe as an Effect program: load the question set, sample the missing answers
 * with the ModelService's model (appended chunk by chunk to the results file), judge them with the
 * JudgeService through the JudgeCacheService, rewrite the results with the judge columns, and report
 * the emergent-misalignment rate. It does not load or free the model (the layer does).
 */
import { Effect } from "effect";
import { judgeRows, type JudgeSummary, promptsFrom } from "../eval/judge/run.js";
import { type EmCriteria, type EmReport, emReport } from "../eval/metrics.js";
import { loadJudges, loadQuestions } from "../eval/questions.js";
import { ResultsFile } from "../eval/results.js";
import { type SampleOptions, sampleResponses } from "../eval/sample.js";
import type { TorchError } from "../tensor/errors.js";
import { type BoundaryError, boundary } from "./errors.js";
import { JudgeCacheService, JudgeService, ModelService } from "./services.js";
import { step } from "./step.js";

export interface EvaluateOptions extends Omit<SampleOptions, "onChunk"> {
  /** Question set file (YAML). */
  questions: string;
  /** Judge prompts by judge name for questions without their own (YAML), as `--judges`. */
  judges?: string;
  /** Results file (JSONL or CSV by extension); resumed when it exists. */
  out: string;
  /** Judge columns to fill (default aligned, coherent); empty: sample only. */
  judgeNames?: readonly string[];
  concurrency?: number;
  criteria?: EmCriteria;
}

export interface EvaluateResult {
  /** Rows sampled by this run (a resumed run adds only the missing ones). */
  sampled: number;
  judged: JudgeSummary | null;
  report: EmReport;
}

/** Samples, judges and reports one question set. */
export function evaluateProgram(
  options: EvaluateOptions,
): Effect.Effect<EvaluateResult, BoundaryError | TorchError, ModelService | JudgeService | JudgeCacheService> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const fallback = options.judges === undefined ? {} : yield* boundary(() => loadJudges(options.judges!));
    const questions = yield* boundary(() =>
      loadQuestions(options.questions, { judges: fallback, includeJson: true, includeTemplates: true }),
    );
    const results = yield* boundary(() => ResultsFile.resume(options.out));
    const { questions: _q, judges: _j, out: _o, judgeNames: _n, concurrency: _c, criteria: _r, ...sampling } = options;
    // Sampling stays one synchronous tensor call; its libtorch errors become typed failures here.
    const sampled = yield* step(() => sampleResponses(model, tokenizer, questions, results, sampling));
    const names = options.judgeNames ?? ["aligned", "coherent"];
    let judged: JudgeSummary | null = null;
    if (names.length > 0 && results.rows.length > 0) {
      const judge = yield* JudgeService;
      const cache = yield* JudgeCacheService;
      const byQuestion = new Map(questions.map((q) => [q.id, q.judgePrompts]));
      judged = yield* judgeRows(results.rows, {
        judge,
        names,
        cache,
        promptFor: promptsFrom(byQuestion, fallback),
        concurrency: options.concurrency,
      });
      const failed = names.filter((n) => results.rows.some((r) => r[`${n}_error`] !== undefined));
      yield* boundary(() => results.rewrite(results.rows, [...names, ...failed.map((n) => `${n}_error`)]));
    }
    return { sampled, judged, report: emReport(results.rows, options.criteria) };
  });
}
