/**
 * The judging adapter of the experiment stages: a judge declared in the experiment file (an
 * OpenAI-compatible API, a local emlab model, or a TypeScript function) applied to result rows that
 * lack a score, writing the judge columns back to the results file. API and local judges go through
 * the evaluation library's judgeRows (prompts from the question set, a persistent cache in the stage
 * directory); function judges are called directly. Interrupted (or failed) after some scores arrived,
 * it still rewrites the results file with every score received, so a rerun judges only the rest.
 */
import { Effect, Exit } from "effect";
import { join } from "node:path";
import { JudgeService } from "../../effect/services.js";
import { JudgeCache } from "../../eval/judge/cache.js";
import { judgeRows, promptsFrom } from "../../eval/judge/run.js";
import { loadJudges, loadQuestions } from "../../eval/questions.js";
import type { ResultRow, ResultsFile } from "../../eval/results.js";
import { attempt } from "../../train/attempt.js";
import { loadFunctionJudge, runFunctionJudge } from "../function-judge.js";
import { checkJudgePrompts } from "../preflight.js";
import type { JudgeSpec } from "../schema.js";
import type { StageFailure } from "./context.js";

const hasScore = (row: ResultRow, name: string) => row[name] !== undefined && row[name] !== null && row[name] !== "";

export interface JudgeStageOptions {
  spec: JudgeSpec;
  names: readonly string[];
  /** The question set whose judge prompts API and local judges fill. */
  questionsFile: string | null;
  /** A judges file with prompts by judge name (for short question items). */
  judgePromptsFile?: string | null;
  cacheDir: string;
  at: (path: string) => string;
  progress: (label: string, done: number, total: number) => void;
  log: (line: string) => void;
  /** The experiment file and the stage's path in it (errors name the field). */
  file: string;
  path: string;
}

/** Judges the rows of `results` in place and rewrites the file; returns counts. */
export function judgeResults(
  results: ResultsFile,
  options: JudgeStageOptions,
): Effect.Effect<{ judged: number; failed: number }, StageFailure> {
  const { spec, names } = options;
  const rows = results.rows;
  let received = 0;
  const progress = (done: number, total: number) => {
    received = done;
    options.progress("judge", done, total);
  };
  const columns = () => [...names, ...names.filter((n) => rows.some((r) => r[`${n}_error`] !== undefined)).map((n) => `${n}_error`)];
  const judging: Effect.Effect<{ judged: number; failed: number }, StageFailure> =
    spec.kind === "function"
      ? Effect.gen(function* () {
          const modulePath = options.at(spec.module);
          const judge = yield* Effect.tryPromise({
            try: () => loadFunctionJudge(modulePath, spec.export),
            catch: (error) => error as StageFailure,
          });
          const todo = rows.filter((r) => names.some((n) => !hasScore(r, n)));
          let done = 0;
          yield* Effect.forEach(
            todo,
            (row) =>
              Effect.tryPromise({
                try: () =>
                  runFunctionJudge(judge, { question: row.question, questionId: row.question_id, answer: row.response }, modulePath),
                catch: (error) => error as StageFailure,
              }).pipe(
                Effect.map((scores) => {
                  for (const n of names) row[n] = scores[n] ?? null;
                  progress(++done, todo.length);
                }),
              ),
            { concurrency: spec.concurrency ?? 16, discard: true },
          );
          return { judged: todo.length, failed: 0 };
        })
      : Effect.gen(function* () {
          const questions = yield* attempt(() => {
            checkJudgePrompts(spec, options.questionsFile, options.judgePromptsFile ?? null, options.file, options.path);
            const fallback = options.judgePromptsFile ? loadJudges(options.judgePromptsFile) : {};
            const set = options.questionsFile
              ? loadQuestions(options.questionsFile, { judges: fallback, includeJson: true, includeTemplates: true })
              : [];
            return { set, fallback };
          });
          // A local judge's model lives exactly as long as this program (the layer's finalizer frees it).
          const judgeLayer =
            spec.kind === "local"
              ? JudgeService.local(options.at(spec.model))
              : JudgeService.openai({
                  model: spec.model,
                  baseURL: spec.base_url,
                  azure:
                    spec.azure_endpoint !== undefined ? { endpoint: spec.azure_endpoint, apiVersion: spec.azure_api_version } : undefined,
                  maxRetries: spec.max_retries,
                  timeoutMs: (spec.timeout_s ?? 60) * 1000,
                });
          const summary = yield* Effect.gen(function* () {
            const judge = yield* JudgeService;
            return yield* judgeRows(rows, {
              judge,
              names,
              promptFor: promptsFrom(new Map(questions.set.map((q) => [q.id, q.judgePrompts])), questions.fallback),
              cache: new JudgeCache(join(options.cacheDir, "judge-cache.jsonl")),
              concurrency: spec.concurrency ?? 8,
              onProgress: progress,
            });
          }).pipe(Effect.provide(judgeLayer));
          if (summary.failed > 0 && summary.failed === summary.requested)
            return yield* attempt(() => {
              throw new RangeError(`every judge call failed (${summary.failed}); see the *_error columns of ${results.path}`);
            });
          return { judged: summary.requested, failed: summary.failed };
        });
  return judging.pipe(
    Effect.onExit((exit) =>
      Exit.isSuccess(exit)
        ? Effect.sync(() => results.rewrite(rows, columns()))
        : received > 0
          ? Effect.sync(() => {
              results.rewrite(rows, columns());
              options.log(`kept ${received} judge results in ${results.path}; the rest are judged when the stage runs again`);
            })
          : Effect.void,
    ),
  );
}
