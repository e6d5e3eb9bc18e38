/**
 * The judging adapter of the experiment stages: a judge declared in the experiment file (an
 * OpenAI-compatible API, a local emlab model, or a TypeScript function) applied to result rows that
 * lack a score, writing the judge columns back to the results file. API and local judges go through
 * the evaluation library's judgeRows (prompts from the question set, a persistent cache in the stage
 * directory); function judges are called directly.
 */
import { Effect } from "effect";
import { join } from "node:path";
import { JudgeCache } from "../../eval/judge/cache.js";
import { runPromise } from "../../effect/run-promise.js";
import { JudgeService } from "../../effect/services.js";
import { judgeRows, promptsFrom } from "../../eval/judge/run.js";
import { loadJudges, loadQuestions } from "../../eval/questions.js";
import type { ResultRow, ResultsFile } from "../../eval/results.js";
import { loadFunctionJudge, runFunctionJudge } from "../function-judge.js";
import type { JudgeSpec } from "../schema.js";

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
}

/** Judges the rows of `results` in place and rewrites the file; returns counts. */
export async function judgeResults(results: ResultsFile, options: JudgeStageOptions): Promise<{ judged: number; failed: number }> {
  const { spec, names } = options;
  const rows = results.rows;
  if (spec.kind === "function") {
    const modulePath = options.at(spec.module);
    const judge = await loadFunctionJudge(modulePath, spec.export);
    const todo = rows.filter((r) => names.some((n) => !hasScore(r, n)));
    let done = 0;
    await Effect.runPromise(
      Effect.forEach(
        todo,
        (row) =>
          Effect.promise(async () => {
            const scores = await runFunctionJudge(
              judge,
              { question: row.question, questionId: row.question_id, answer: row.response },
              modulePath,
            );
            for (const n of names) row[n] = scores[n] ?? null;
            options.progress("judge", ++done, todo.length);
          }),
        { concurrency: spec.concurrency ?? 16, discard: true },
      ),
    );
    results.rewrite(rows, [...names]);
    return { judged: todo.length, failed: 0 };
  }
  if (options.questionsFile === null && !options.judgePromptsFile)
    throw new RangeError("API and local judges need the question set or a judge_prompts file (their judge prompts)");
  const fallback = options.judgePromptsFile ? loadJudges(options.judgePromptsFile) : {};
  const questions = options.questionsFile
    ? loadQuestions(options.questionsFile, { judges: fallback, includeJson: true, includeTemplates: true })
    : [];
  // A local judge's model lives exactly as long as this program (the layer's finalizer frees it).
  const judgeLayer =
    spec.kind === "local"
      ? JudgeService.local(options.at(spec.model))
      : JudgeService.openai({
          model: spec.model,
          baseURL: spec.base_url,
          azure: spec.azure_endpoint !== undefined ? { endpoint: spec.azure_endpoint, apiVersion: spec.azure_api_version } : undefined,
          maxRetries: spec.max_retries,
          timeoutMs: (spec.timeout_s ?? 60) * 1000,
        });
  const judgeAll = Effect.gen(function* () {
    const judge = yield* JudgeService;
    return yield* judgeRows(rows, {
      judge,
      names,
      promptFor: promptsFrom(new Map(questions.map((q) => [q.id, q.judgePrompts])), fallback),
      cache: new JudgeCache(join(options.cacheDir, "judge-cache.jsonl")),
      concurrency: spec.concurrency ?? 8,
      onProgress: (d, t) => options.progress("judge", d, t),
    });
  });
  const summary = await runPromise(judgeAll.pipe(Effect.provide(judgeLayer)));
  const failedNames = names.filter((n) => rows.some((r) => r[`${n}_error`] !== undefined));
  results.rewrite(rows, [...names, ...failedNames.map((n) => `${n}_error`)]);
  if (summary.failed > 0 && summary.failed === summary.requested)
    throw new RangeError(`every judge call failed (${summary.failed}); see the *_error columns of ${results.path}`);
  return { judged: summary.requested, failed: summary.failed };
}
