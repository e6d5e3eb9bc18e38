/**
 * `emlab eval --model DIR --questions FILE --out RESULTS.(csv|jsonl) [--samples N] [--max-new-tokens 600]
 *  [--temperature 1] [--top-p 1] [--seed 0] [--chunk-size 25] [--system TEXT] [judge flags] [--no-judge]
 *  [metric flags] [--json]`: samples answers (resumable), judges them, prints the EM metrics.
 */
import { parseArgs } from "node:util";
import { emReport } from "../eval/metrics.js";
import { loadJudges, loadQuestions } from "../eval/questions.js";
import { ResultsFile } from "../eval/results.js";
import { sampleResponses } from "../eval/sample.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { parseNumber, required } from "./args.js";
import { judgeFlags, judgeResultsFile } from "./judge-options.js";
import { criteriaFrom, formatReport, metricFlags } from "./metrics.js";
import { modelOptions, openModel } from "./model-args.js";
import { progressReporter } from "./progress.js";

export async function runEval(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      ...modelOptions,
      ...judgeFlags,
      ...metricFlags,
      out: { type: "string" },
      samples: { type: "string" },
      "max-new-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "chunk-size": { type: "string" },
      system: { type: "string" },
      "no-judge": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const questionsFile = required("--questions", values.questions);
  const out = required("--out", values.out);
  const judges = values.judges ? loadJudges(values.judges) : {};
  const questions = loadQuestions(questionsFile, { judges });
  const results = ResultsFile.resume(out);
  if (results.setAside) {
    const { line, bytes, file } = results.setAside;
    process.stderr.write(`${out}: line ${line}: the last record was cut short (interrupted write); its ${bytes} bytes were moved to ${file}\n`);
  }
  const model = openModel(values);
  try {
    const tokenizer = ChatTokenizer.fromDir(model.dir);
    const added = sampleResponses(model, tokenizer, questions, results, {
      samples: parseNumber("--samples", values.samples, { integer: true, min: 1 }) ?? 50,
      maxNewTokens: parseNumber("--max-new-tokens", values["max-new-tokens"], { integer: true, min: 1 }) ?? 600,
      temperature: parseNumber("--temperature", values.temperature, { min: 0.0001 }) ?? 1,
      topP: parseNumber("--top-p", values["top-p"], { min: 0, max: 1 }) ?? 1,
      seed: parseNumber("--seed", values.seed, { integer: true, min: 0 }) ?? 0,
      chunkSize: parseNumber("--chunk-size", values["chunk-size"], { integer: true, min: 1 }),
      system: values.system,
      onChunk: progressReporter("sample"),
    });
    process.stderr.write(`sampled ${added} new rows (${results.rows.length} in ${out})\n`);
  } finally {
    model.dispose();
  }
  if (!values["no-judge"]) await judgeResultsFile(results, { ...values, questions: questionsFile });
  const report = emReport(results.rows, criteriaFrom(values));
  process.stdout.write(values.json ? `${JSON.stringify({ file: out, ...report })}\n` : `${formatReport(out, report)}\n`);
  return 0;
}
