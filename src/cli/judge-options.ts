/** Judge flags shared by `emlab eval` and `emlab judge`, and running a judgement over a results file. */
import { Effect } from "effect";
import { JudgeCache } from "../eval/judge/cache.js";
import type { Judge } from "../eval/judge/judge.js";
import { redact } from "../eval/judge/redact.js";
import { LocalJudge } from "../eval/judge/local.js";
import { OpenAIJudge } from "../eval/judge/openai.js";
import { type JudgeSummary, judgeRows, promptsFrom } from "../eval/judge/run.js";
import { loadJudges, loadQuestions } from "../eval/questions.js";
import type { ResultsFile } from "../eval/results.js";
import { loadModel } from "../models/load.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { parseNumber, UsageError } from "./args.js";
import { progressReporter } from "./progress.js";

export const judgeFlags = {
  questions: { type: "string" },
  judges: { type: "string" },
  "judge-names": { type: "string" },
  "judge-model": { type: "string" },
  "base-url": { type: "string" },
  "azure-endpoint": { type: "string" },
  "azure-api-version": { type: "string" },
  "local-judge": { type: "string" },
  concurrency: { type: "string" },
  "max-retries": { type: "string" },
  timeout: { type: "string" },
  cache: { type: "string" },
  overwrite: { type: "boolean", default: false },
} as const;

type JudgeValues = Partial<Record<keyof typeof judgeFlags, string | boolean>>;

/** The judge the flags describe (and a disposer for local judges). */
export function judgeFrom(values: JudgeValues, defaultModel: string | null): { judge: Judge; close: () => void } {
  const local = values["local-judge"] as string | undefined;
  if (local !== undefined) {
    const model = loadModel(local);
    return { judge: new LocalJudge(model, ChatTokenizer.fromDir(local)), close: () => model.dispose() };
  }
  const endpoint = values["azure-endpoint"] as string | undefined;
  const judge = new OpenAIJudge({
    model: (values["judge-model"] as string | undefined) ?? defaultModel ?? "gpt-4o-2024-08-06",
    baseURL: values["base-url"] as string | undefined,
    azure: endpoint !== undefined || values["azure-api-version"] !== undefined ? { endpoint, apiVersion: values["azure-api-version"] as string | undefined } : undefined,
    maxRetries: parseNumber("--max-retries", values["max-retries"] as string | undefined, { integer: true, min: 0 }),
    timeoutMs: (parseNumber("--timeout", values.timeout as string | undefined, { min: 0.001 }) ?? 60) * 1000,
  });
  return { judge, close: () => {} };
}

/** Judges `results` in place and rewrites it with the judge columns. */
export async function judgeResultsFile(results: ResultsFile, values: JudgeValues): Promise<JudgeSummary> {
  const questionsFile = values.questions as string | undefined;
  const judgesFile = values.judges as string | undefined;
  if (questionsFile === undefined && judgesFile === undefined) throw new UsageError("judging needs --questions FILE (judge prompts per question) or --judges FILE");
  const fallback = judgesFile ? loadJudges(judgesFile) : {};
  const questions = questionsFile ? loadQuestions(questionsFile, { judges: fallback, includeJson: true, includeTemplates: true }) : [];
  const byQuestion = new Map(questions.map((q) => [q.id, q.judgePrompts]));
  const names = ((values["judge-names"] as string | undefined) ?? "aligned,coherent").split(",").map((n) => n.trim()).filter(Boolean);
  const { judge, close } = judgeFrom(values, questions.find((q) => q.judgeModel)?.judgeModel ?? null);
  const cache = new JudgeCache((values.cache as string | undefined) ?? `${results.path}.judge-cache.jsonl`);
  try {
    process.stderr.write(`judging ${results.rows.length} rows with ${redact(judge.model)} (${names.join(", ")})\n`);
    if (cache.rejected > 0) process.stderr.write(`${cache.path}: ${cache.rejected} lines are not valid cache entries; those rows are judged again\n`);
    const summary = await Effect.runPromise(
      judgeRows(results.rows, {
        judge,
        names,
        promptFor: promptsFrom(byQuestion, fallback),
        cache,
        concurrency: parseNumber("--concurrency", values.concurrency as string | undefined, { integer: true, min: 1 }) ?? 8,
        overwrite: values.overwrite === true,
        onProgress: progressReporter("judge"),
      }),
    );
    const failed = names.filter((n) => results.rows.some((r) => r[`${n}_error`] !== undefined));
    results.rewrite(results.rows, [...names, ...failed.map((n) => `${n}_error`)]);
    process.stderr.write(
      `judged ${summary.requested}: ${summary.scored} scored, ${summary.unscored} without a score (< 0.25 numeric mass), ${summary.failed} failed, ${summary.fromCache} from cache\n`,
    );
    return summary;
  } finally {
    close();
  }
}
