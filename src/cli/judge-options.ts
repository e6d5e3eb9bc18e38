/** Judge flags shared by `emlab eval` and `emlab judge`, and running a judgement over a results file. */
import { Context, Effect, Exit, Layer, type Scope } from "effect";
import type { BoundaryError } from "../effect/errors.js";
import { runPromise } from "../effect/run-promise.js";
import { JudgeService } from "../effect/services.js";
import { JudgeCache } from "../eval/judge/cache.js";
import { redact } from "../eval/judge/redact.js";
import type { Judge } from "../eval/judge/judge.js";
import { type JudgeRowsOptions, type JudgeSummary, judgeRows, promptsFrom } from "../eval/judge/run.js";
import { loadJudges, loadQuestions } from "../eval/questions.js";
import type { ResultsFile } from "../eval/results.js";
import { parseNumber, UsageError } from "./args.js";
import { progressReporter } from "./progress.js";

export const judgeFlags = {
  questions: { type: "string", value: "FILE.yaml", description: "question set with judge prompts per question (the study's YAML)" },
  judges: { type: "string", value: "FILE.yaml", description: "judge prompts by name, for questions without their own" },
  "judge-names": { type: "string", value: "A,B", default: "aligned,coherent", description: "judges to run (one column each)" },
  "judge-model": {
    type: "string",
    value: "MODEL",
    description: "judge model or Azure deployment (default: the questions' judge, else gpt-4o-2024-08-06)",
  },
  "base-url": {
    type: "string",
    value: "URL",
    description: "an OpenAI-compatible server (default: OPENAI_BASE_URL, else api.openai.com; key from OPENAI_API_KEY)",
  },
  "azure-endpoint": { type: "string", value: "URL", description: "Azure OpenAI endpoint (key from AZURE_OPENAI_API_KEY)" },
  "azure-api-version": { type: "string", value: "VERSION", description: "Azure OpenAI API version" },
  "local-judge": { type: "string", value: "DIR", description: "judge with a local model loaded by emlab (same protocol, no network)" },
  concurrency: { type: "string", value: "N", default: "8", description: "judge requests in flight" },
  "max-retries": { type: "string", value: "N", default: "6", description: "retries of a failed request (429, 5xx, timeouts, bad replies)" },
  timeout: { type: "string", value: "SECONDS", default: "60", description: "per-request timeout" },
  cache: { type: "string", value: "FILE", description: "judge cache (default: RESULTS.judge-cache.jsonl)" },
  overwrite: { type: "boolean", description: "judge rows that already have scores again" },
} as const;

/**
 * Fails before any work when the chosen judge has no credentials: api.openai.com needs OPENAI_API_KEY,
 * Azure AZURE_OPENAI_API_KEY; a --base-url server (local servers often need none) and --local-judge pass.
 */
export function checkJudgeCredentials(values: JudgeValues, env: NodeJS.ProcessEnv = process.env): void {
  if (values["local-judge"] !== undefined) return;
  const azure = values["azure-endpoint"] !== undefined || values["azure-api-version"] !== undefined;
  if (azure) {
    if (!env.AZURE_OPENAI_API_KEY)
      throw new UsageError("judging with Azure OpenAI needs AZURE_OPENAI_API_KEY in the environment (or --local-judge DIR, or --no-judge)");
    return;
  }
  if (values["base-url"] === undefined && !env.OPENAI_BASE_URL && !env.OPENAI_API_KEY) {
    throw new UsageError(
      "judging with api.openai.com needs OPENAI_API_KEY in the environment (or --base-url URL for another server, --local-judge DIR, or --no-judge)",
    );
  }
}

type JudgeValues = Partial<Record<keyof typeof judgeFlags, string | boolean>>;

/** The judge the flags describe, as a layer (a local judge's model is freed by the layer's finalizer). */
export function judgeLayerFrom(values: JudgeValues, defaultModel: string | null): Layer.Layer<JudgeService, BoundaryError> {
  const local = values["local-judge"] as string | undefined;
  if (local !== undefined) return JudgeService.local(local);
  const endpoint = values["azure-endpoint"] as string | undefined;
  // Options are parsed here, eagerly: a bad flag is a UsageError before anything runs.
  return JudgeService.openai({
    model: (values["judge-model"] as string | undefined) ?? defaultModel ?? "gpt-4o-2024-08-06",
    baseURL: values["base-url"] as string | undefined,
    azure:
      endpoint !== undefined || values["azure-api-version"] !== undefined
        ? { endpoint, apiVersion: values["azure-api-version"] as string | undefined }
        : undefined,
    maxRetries: parseNumber("--max-retries", values["max-retries"] as string | undefined, { integer: true, min: 0 }),
    timeoutMs:
      (parseNumber("--timeout", (values.timeout as string | undefined) ?? judgeFlags.timeout.default, { min: 0.001 }) ?? 60) * 1000,
  });
}

/** What judging `results` needs from the flags: the judge's layer, names, prompts, cache, concurrency. */
export interface Judging {
  layer: Layer.Layer<JudgeService, BoundaryError>;
  options: Omit<JudgeRowsOptions, "onProgress" | "judge">;
}

export function judgingFrom(results: ResultsFile, values: JudgeValues): Judging {
  const questionsFile = values.questions as string | undefined;
  const judgesFile = values.judges as string | undefined;
  if (questionsFile === undefined && judgesFile === undefined)
    throw new UsageError("judging needs --questions FILE (judge prompts per question) or --judges FILE");
  const fallback = judgesFile ? loadJudges(judgesFile) : {};
  const questions = questionsFile ? loadQuestions(questionsFile, { judges: fallback, includeJson: true, includeTemplates: true }) : [];
  const byQuestion = new Map(questions.map((q) => [q.id, q.judgePrompts]));
  const names = ((values["judge-names"] as string | undefined) ?? judgeFlags["judge-names"].default)
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  const layer = judgeLayerFrom(values, questions.find((q) => q.judgeModel)?.judgeModel ?? null);
  const concurrency = parseNumber("--concurrency", (values.concurrency as string | undefined) ?? judgeFlags.concurrency.default, {
    integer: true,
    min: 1,
  })!;
  const cache = new JudgeCache((values.cache as string | undefined) ?? `${results.path}.judge-cache.jsonl`);
  return {
    layer,
    options: { names, promptFor: promptsFrom(byQuestion, fallback), cache, concurrency, overwrite: values.overwrite === true },
  };
}

/** Builds the judge in the caller's scope (a local judge's model is freed when that scope closes) and says what it judges. */
export function acquireJudge(judging: Judging, what: string): Effect.Effect<Judge, BoundaryError, Scope.Scope> {
  return Layer.build(judging.layer).pipe(
    Effect.map((services) => Context.get(services, JudgeService)),
    Effect.tap((judge) =>
      Effect.sync(() => {
        const { cache, names } = judging.options;
        process.stderr.write(`judging ${what} with ${redact(judge.model)} (${names.join(", ")})\n`);
        if (cache.rejected > 0)
          process.stderr.write(`${cache.path}: ${cache.rejected} lines are not valid cache entries; those rows are judged again\n`);
      }),
    ),
  );
}

/** The summary line of a judgement. */
export const judgedLine = (summary: JudgeSummary): string =>
  `judged ${summary.requested}: ${summary.scored} scored, ${summary.unscored} without a score (< 0.25 numeric mass), ${summary.failed} failed, ${summary.fromCache} from cache\n`;

/**
 * Judges `results` in place and rewrites it with the judge columns. Interrupted (or failed) after some
 * scores arrived, it still rewrites the file with every score received (the cache holds them too), so a
 * rerun requests only the rows still missing.
 */
export function judgeResultsProgram(results: ResultsFile, values: JudgeValues): Effect.Effect<JudgeSummary, BoundaryError> {
  const judging = judgingFrom(results, values);
  const { names } = judging.options;
  const report = progressReporter("judge");
  let received = 0;
  const rewrite = Effect.sync(() => {
    const failed = names.filter((n) => results.rows.some((r) => r[`${n}_error`] !== undefined));
    results.rewrite(results.rows, [...names, ...failed.map((n) => `${n}_error`)]);
  });
  return Effect.scoped(
    Effect.gen(function* () {
      const judge = yield* acquireJudge(judging, `${results.rows.length} rows`);
      const onProgress = (done: number, total: number) => {
        received = done;
        report(done, total);
      };
      return yield* judgeRows(results.rows, { ...judging.options, judge, onProgress });
    }),
  ).pipe(
    Effect.onExit((exit) =>
      Exit.isSuccess(exit)
        ? rewrite.pipe(Effect.andThen(Effect.sync(() => process.stderr.write(judgedLine(exit.value)))))
        : received > 0
          ? rewrite.pipe(
              Effect.andThen(
                Effect.sync(() =>
                  process.stderr.write(`${received} judge results written to ${results.path}; run again to judge the rest\n`),
                ),
              ),
            )
          : Effect.void,
    ),
  );
}

/** `judgeResultsProgram` as a Promise. */
export function judgeResultsFile(results: ResultsFile, values: JudgeValues): Promise<JudgeSummary> {
  return runPromise(judgeResultsProgram(results, values));
}
