/**
 * Sampling and judging overlapped: each sampled chunk is appended to the results file (as
 * `sampleResponses` does) and handed to the judge while the next chunk is sampled; the event loop
 * turns between decode steps (sampleChunksEffect), so judge replies, progress output and signals are
 * handled during sampling, and an interruption stops the chunk being generated within one step.
 * Chunks are judged one after another (each with the judge's own concurrency) and the file is
 * rewritten with the judge columns at the end, so its rows and cells are those of sampling everything
 * first and judging afterwards. Interrupted or failed, it still rewrites the file with every row judged
 * so far (the sampled rows are in it already) before it ends.
 */
import { Effect, Fiber, Semaphore } from "effect";
import type { LoadedModel } from "../models/load.js";
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { type JudgeRowsOptions, type JudgeSummary, judgeRows } from "./judge/run.js";
import type { Question } from "./questions.js";
import type { ResultRow, ResultsFile } from "./results.js";
import type { GenerationError } from "../generate/generate-effect.js";
import { type SampleOptions, sampleChunksEffect } from "./sample.js";

export interface SampleAndJudgeResult {
  /** Rows sampled by this call. */
  added: number;
  /** Null when nothing was judged (no judge given). */
  judged: JudgeSummary | null;
}

const noJudgements = (): JudgeSummary => ({ requested: 0, fromCache: 0, scored: 0, unscored: 0, failed: 0 });

/**
 * Samples the missing rows of `questions` into `results` and, with `judging`, judges every row without
 * a score (earlier rows first, then each new chunk as soon as it is sampled).
 */
export const sampleAndJudge = (
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  questions: readonly Question[],
  results: ResultsFile,
  sampling: SampleOptions,
  judging: (Omit<JudgeRowsOptions, "onProgress"> & { onProgress?: (done: number, total: number) => void }) | null,
): Effect.Effect<SampleAndJudgeResult, GenerationError> =>
  Effect.gen(function* () {
    let added = 0;
    const summary = noJudgements();
    const progress = { done: 0, total: 0 };
    const pipeline = Effect.scoped(
      Effect.gen(function* () {
        const oneAtATime = yield* Semaphore.make(1);
        const fibers: Fiber.Fiber<void>[] = [];
        const judge = (rows: readonly ResultRow[]) =>
          judging === null
            ? Effect.void
            : Effect.forkScoped(
                oneAtATime.withPermits(1)(
                  judgeRows(rows, {
                    ...judging,
                    onProgress: (done, total) => judging.onProgress?.(progress.done + done, progress.total + total),
                  }).pipe(
                    Effect.map((s) => {
                      for (const key of Object.keys(summary) as (keyof JudgeSummary)[]) summary[key] += s[key];
                      progress.done += s.requested;
                      progress.total += s.requested;
                    }),
                  ),
                ),
              ).pipe(Effect.map((fiber) => void fibers.push(fiber)));
        if (results.rows.length > 0) yield* judge([...results.rows]);
        added = yield* sampleChunksEffect(model, tokenizer, questions, results, sampling, judge);
        yield* Fiber.joinAll(fibers);
      }),
    );
    if (judging === null) {
      yield* pipeline;
      return { added, judged: null };
    }
    // The judge columns are written whatever happens (completed, failed or interrupted).
    const failedColumns = () =>
      judging.names.filter((n) => results.rows.some((r) => r[`${n}_error`] !== undefined)).map((n) => `${n}_error`);
    yield* pipeline.pipe(
      Effect.ensuring(Effect.sync(() => results.rows.length > 0 && results.rewrite(results.rows, [...judging.names, ...failedColumns()]))),
    );
    return { added, judged: summary };
  });
