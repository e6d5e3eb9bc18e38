/**
 * `emlab judge RESULTS (--questions FILE | --judges FILE) [--judge-names aligned,coherent]
 *  [--judge-model M --base-url URL | --azure-endpoint URL | --local-judge DIR] [--concurrency 8] [--cache FILE]`:
 * adds (or completes) judge columns in a results file (CSV or JSONL).
 */
import { Effect } from "effect";
import { ResultsFile } from "../eval/results.js";
import { parseOrHelp } from "./generate.js";
import { checkJudgeCredentials, judgeFlags, judgeResultsProgram } from "./judge-options.js";
import { defineCommand } from "./options.js";
import { runInterruptible } from "./runtime.js";

export const judgeCommand = defineCommand({
  name: "judge",
  summary: "Add (or complete) judge columns in a results file: logprob-weighted 0-100 scores, cached and retried.",
  positionals: [{ name: "RESULTS", description: "results file (CSV or JSONL) with response, question, question_id" }],
  notes: ["Give --questions FILE or --judges FILE (judge prompts)."],
  options: judgeFlags,
});

export async function runJudge(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(judgeCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const results = ResultsFile.read(positionals[0]!);
  checkJudgeCredentials(values);
  // SIGINT / SIGTERM interrupt judging; the scores received so far are written and the exit code is 130 / 143.
  return runInterruptible(
    judgeResultsProgram(results, values).pipe(
      Effect.map((summary) => {
        if (summary.failed > 0)
          process.stderr.write(`emlab judge: ${summary.failed} of ${summary.requested} judge calls failed; see the *_error columns\n`);
        return summary.failed > 0 ? 1 : 0;
      }),
    ),
  );
}
