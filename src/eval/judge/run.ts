/**
 * Judging result rows: for each row and judge name without a score yet, fill the judge's prompt with
 * the row's question and response, take the score from the cache or the judge (bounded concurrency),
 * and record the score, its raw top logprobs, or the permanent (redacted) error on the row. One
 * failing row never loses the others. A judge's result is checked before it is used or cached (a
 * failure is never cached as a result), and the summary counts the scores actually written.
 */
import { Effect } from "effect";
import { fillJudgePrompt } from "../questions.js";
import type { ResultRow } from "../results.js";
import type { JudgeCache } from "./cache.js";
import { type Judge, JudgeError } from "./judge.js";
import { redactMessage } from "./redact.js";
import type { JudgeScore } from "./score.js";

export interface JudgeRowsOptions {
  judge: Judge;
  /** Judge name (column) -> prompt template for a row (null: this judge does not apply to the row). */
  promptFor: (name: string, row: ResultRow) => string | null;
  names: readonly string[];
  cache: JudgeCache;
  concurrency?: number;
  /** Re-judge rows that already have a score in the column. */
  overwrite?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface JudgeSummary {
  requested: number;
  fromCache: number;
  /** Cells now holding a finite score. */
  scored: number;
  /** Valid replies without a score (numeric mass below the threshold). */
  unscored: number;
  failed: number;
}

/** A judge result that can be written and cached: a score in [0, 100] or none, and a sane mass. */
function checked(model: string, s: JudgeScore): Effect.Effect<JudgeScore, JudgeError> {
  const scoreOk = s.score === null || (typeof s.score === "number" && Number.isFinite(s.score) && s.score >= 0 && s.score <= 100);
  const massOk = typeof s.numericMass === "number" && Number.isFinite(s.numericMass) && s.numericMass >= 0 && s.numericMass <= 1.001;
  if (scoreOk && massOk && Array.isArray(s.top)) return Effect.succeed(s);
  return Effect.fail(
    new JudgeError({
      message: `judge ${model} returned an invalid result (score ${String(s.score)}, numeric mass ${String(s.numericMass)})`,
      reason: { _tag: "InvalidResult" },
      status: null,
      attempts: 1,
    }),
  );
}

const hasScore = (row: ResultRow, name: string): boolean => row[name] !== undefined && row[name] !== null && row[name] !== "";

/** Fills `rows` in place (columns `name`, `${name}_raw`, `${name}_error`). */
export function judgeRows(rows: readonly ResultRow[], options: JudgeRowsOptions): Effect.Effect<JudgeSummary> {
  const tasks: { row: ResultRow; name: string; prompt: string }[] = [];
  for (const row of rows) {
    for (const name of options.names) {
      if (!options.overwrite && hasScore(row, name)) continue;
      const prompt = options.promptFor(name, row);
      if (prompt !== null) tasks.push({ row, name, prompt });
    }
  }
  const summary: JudgeSummary = { requested: tasks.length, fromCache: 0, scored: 0, unscored: 0, failed: 0 };
  let done = 0;
  const run = ({ row, name, prompt }: (typeof tasks)[number]) => {
    const cached = options.cache.get(options.judge.model, prompt);
    const scored = cached
      ? Effect.sync(() => {
          summary.fromCache++;
          return cached;
        })
      : options.judge.score(prompt).pipe(
          Effect.flatMap((s) => checked(options.judge.model, s)),
          Effect.tap((s) => Effect.sync(() => options.cache.set(options.judge.model, prompt, s))),
        );
    return scored.pipe(
      Effect.match({
        onSuccess: (s) => {
          row[name] = s.score;
          row[`${name}_raw`] = s.top;
          delete row[`${name}_error`];
          if (typeof row[name] === "number" && Number.isFinite(row[name])) summary.scored++;
          else summary.unscored++;
        },
        onFailure: (error) => {
          row[name] = null;
          row[`${name}_error`] = redactMessage(error.message);
          delete row[`${name}_raw`];
          summary.failed++;
        },
      }),
      Effect.tap(() => Effect.sync(() => options.onProgress?.(++done, tasks.length))),
    );
  };
  return Effect.forEach(tasks, run, { concurrency: options.concurrency ?? 8, discard: true }).pipe(Effect.as(summary));
}

/** Builds `promptFor` from question-set judge prompts (by question id) with fallbacks by judge name. */
export function promptsFrom(
  byQuestion: ReadonlyMap<string, Record<string, string>>,
  fallback: Readonly<Record<string, string>> = {},
): (name: string, row: ResultRow) => string | null {
  return (name, row) => {
    const template = byQuestion.get(row.question_id)?.[name] ?? fallback[name];
    return template === undefined ? null : fillJudgePrompt(template, row.question, row.response);
  };
}
