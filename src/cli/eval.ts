/**
 * `emlab eval`: samples answers to a question set (resumable), judges them, prints the EM metrics.
 * Inputs and judge credentials are checked before the model is loaded or anything is written; the
 * command exits 1 when no row could be scored (every judge call failed, or no score), saying why.
 */
import { Effect } from "effect";
import { redact } from "../eval/judge/redact.js";
import { emReport } from "../eval/metrics.js";
import { loadJudges, loadQuestions } from "../eval/questions.js";
import { ResultsFile } from "../eval/results.js";
import { sampleResponsesRemoteEffect } from "../eval/remote-sample.js";
import { sampleAndJudge } from "../eval/sample-and-judge.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { parseNumber, required, UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { acquireJudge, checkJudgeCredentials, judgedLine, judgeFlags, judgeResultsProgram, judgingFrom } from "./judge-options.js";
import { criteriaFrom, formatReport, metricFlags } from "./metrics.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";
import { runInterruptible } from "./runtime.js";
import { sampleEndpointFrom, sampleEndpointOptions } from "./sample-endpoint-args.js";
import { attachSteering, steeringOptions } from "./steering-args.js";

export const evalCommand = defineCommand({
  name: "eval",
  summary: "Sample answers to a question set (resumable), judge them and print the EM metrics.",
  options: {
    ...modelOptions,
    model: { ...modelOptions.model, required: false, description: `${modelOptions.model.description} (required unless --sample-endpoint)` },
    ...sampleEndpointOptions,
    ...judgeFlags,
    questions: { ...judgeFlags.questions, required: true },
    ...metricFlags,
    out: { type: "string", value: "RESULTS.csv|.jsonl", required: true, description: "results file (completed when it exists)" },
    samples: { type: "string", value: "N", default: "50", description: "answers per question paraphrase" },
    "max-new-tokens": { type: "string", value: "N", default: "600", description: "tokens per answer at most" },
    temperature: { type: "string", value: "T", default: "1", description: "sampling temperature (the study's)" },
    "top-p": { type: "string", value: "P", default: "1", description: "nucleus sampling mass" },
    "chunk-size": { type: "string", value: "N", default: "25", description: "answers per generate() call (and per written chunk)" },
    system: { type: "string", value: "TEXT", description: "a system message for questions without their own" },
    ...steeringOptions,
    "no-judge": { type: "boolean", description: "only sample" },
    json: { type: "boolean", description: "print the metrics as JSON" },
  },
});

export async function runEval(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(evalCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const questionsFile = required("--questions", values.questions);
  const out = required("--out", values.out);
  const judges = values.judges ? loadJudges(values.judges) : {};
  const questions = loadQuestions(questionsFile, { judges });
  const sampling = {
    samples: parseNumber("--samples", values.samples, { integer: true, min: 1 })!,
    maxNewTokens: parseNumber("--max-new-tokens", values["max-new-tokens"], { integer: true, min: 1 })!,
    temperature: parseNumber("--temperature", values.temperature, { min: 0.0001 })!,
    topP: parseNumber("--top-p", values["top-p"], { min: 0, max: 1 })!,
    seed: parseNumber("--seed", values.seed, { integer: true, min: 0 })!,
    chunkSize: parseNumber("--chunk-size", values["chunk-size"], { integer: true, min: 1 }),
  };
  const endpoint = sampleEndpointFrom(values);
  if (endpoint !== null) {
    for (const flag of ["model", "adapter", "steering"] as const) {
      if (values[flag] !== undefined)
        throw new UsageError(
          `--${flag} does not apply with --sample-endpoint (the server's --sample-model names the model, adapter or steering)`,
        );
    }
  } else required("--model", values.model);
  const criteria = criteriaFrom(values);
  // A judge without credentials would fail every row after the (long) sampling: refuse now.
  if (!values["no-judge"]) checkJudgeCredentials(values);
  const results = ResultsFile.resume(out);
  if (results.setAside) {
    const { line, bytes, file } = results.setAside;
    process.stderr.write(
      `${out}: line ${line}: the last record was cut short (interrupted write); its ${bytes} bytes were moved to ${file}\n`,
    );
  }
  // Sampling (and, with a remote judge, judging overlapped with it) runs as an Effect program: Ctrl-C
  // or SIGTERM stop it between chunks, the rows sampled and judged so far stay in the results file.
  // Remote sampling (--sample-endpoint) is not overlapped with judging; a stop aborts its requests in flight.
  const overlapJudging = endpoint === null && !values["no-judge"] && values["local-judge"] === undefined;
  const sampledRemotely = (remote: NonNullable<typeof endpoint>) =>
    Effect.gen(function* () {
      process.stderr.write(redact(`sampling seed ${sampling.seed} through ${remote.url} (model ${remote.model})\n`));
      const added = yield* sampleResponsesRemoteEffect(remote, questions, results, {
        ...sampling,
        system: values.system,
        onChunk: progressReporter("sample"),
      });
      process.stderr.write(`sampled ${added} new rows (${results.rows.length} in ${out})\n`);
      return null;
    });
  const sampledHere = Effect.scoped(
    Effect.gen(function* () {
      const model = yield* Effect.acquireRelease(
        Effect.sync(() => openModel(values)),
        (m) => Effect.sync(() => m.dispose()),
      );
      yield* Effect.acquireRelease(
        Effect.sync(() => attachSteering(values, model)),
        (detach) => Effect.sync(() => detach()),
      );
      const tokenizer = ChatTokenizer.fromDir(model.dir);
      const judging = overlapJudging ? judgingFrom(results, { ...values, questions: questionsFile }) : null;
      const judge = judging ? yield* acquireJudge(judging, "each sampled chunk") : null;
      process.stderr.write(`sampling seed ${sampling.seed}\n`);
      const outcome = yield* sampleAndJudge(
        model,
        tokenizer,
        questions,
        results,
        { ...sampling, system: values.system, onChunk: progressReporter("sample") },
        judging && judge && { ...judging.options, judge, onProgress: progressReporter("judge") },
      );
      process.stderr.write(`sampled ${outcome.added} new rows (${results.rows.length} in ${out})\n`);
      if (outcome.judged) process.stderr.write(judgedLine(outcome.judged));
      return outcome.judged;
    }),
  );
  const code = await runInterruptible(
    Effect.gen(function* () {
      let summary = yield* endpoint !== null ? sampledRemotely(endpoint) : sampledHere;
      if (results.rows.length === 0) {
        process.stderr.write(`emlab eval: no answers were sampled (no questions in ${questionsFile} after exclusions)\n`);
        return 1;
      }
      // A local judge is a model in this process: it is loaded once the sampled model is released.
      if (!values["no-judge"] && !overlapJudging) summary = yield* judgeResultsProgram(results, { ...values, questions: questionsFile });
      if (summary && summary.requested > 0 && summary.failed === summary.requested) {
        process.stderr.write(`emlab eval: every judge call failed (${summary.failed}); see the *_error columns of ${out}\n`);
        return 1;
      }
      return -1;
    }),
  );
  if (code !== -1) return code;
  const report = emReport(results.rows, criteria);
  process.stdout.write(values.json ? `${JSON.stringify({ file: out, ...report })}\n` : `${formatReport(out, report)}\n`);
  if (!values["no-judge"] && report.scored === 0) {
    process.stderr.write(`emlab eval: no row has both an aligned and a coherent score (${report.dropped} dropped); nothing to report\n`);
    return 1;
  }
  return 0;
}
