// Sampling overlapped with judging (src/eval/sample-and-judge.ts) on a small random Qwen3 with the real
// Qwen3 tokenizer and a real HTTP judge on 127.0.0.1: the results file is byte-identical to sampling
// everything and judging afterwards; judge requests reach the server while sampling is still going;
// interrupted, the file holds every sampled row and every score received, and a second run completes
// it to the same file.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Cause, Effect, Exit, Fiber } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JudgeCache } from "../../src/eval/judge/cache.js";
import { OpenAIJudge } from "../../src/eval/judge/openai.js";
import { judgeRows } from "../../src/eval/judge/run.js";
import type { Question } from "../../src/eval/questions.js";
import { type ResultRow, ResultsFile } from "../../src/eval/results.js";
import { sampleAndJudge } from "../../src/eval/sample-and-judge.js";
import { sampleResponses } from "../../src/eval/sample.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { EVAL_SAMPLING, evalQuestions } from "../helpers/eval-setup.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { makeTinyQwen3 } from "../helpers/tiny-model.js";
import { type FakeOpenAI, startFakeOpenAI } from "./fake-openai.js";

const questions: Question[] = evalQuestions();
const sampling = EVAL_SAMPLING;
const names = ["aligned", "coherent"];
const promptFor = (name: string, row: ResultRow) => `${name}: Q: ${row.question} A: ${row.response} Rate 0-100.`;

let work: string;
let model: LoadedModel;
let tokenizer: ChatTokenizer;
let server: FakeOpenAI;

beforeAll(async () => {
  const { work: dir, modelDir } = makeTinyQwen3("emlab-sample-judge-");
  work = dir;
  model = loadModel(modelDir);
  tokenizer = ChatTokenizer.fromDir(modelDir);
  // The score depends on the prompt only (its length mod 101), whatever order the requests come in.
  server = await startFakeOpenAI((body) => ({
    distribution: [{ token: String(String(body?.messages?.[0]?.content ?? "").length % 101), prob: 1 }],
  }));
});
afterAll(async () => {
  model?.dispose();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});
useLeakCheck();

const judging = () => ({
  judge: new OpenAIJudge({
    model: "judge-model",
    baseURL: server.baseURL,
    apiKey: "sk-test",
    baseDelayMs: 5,
    maxDelayMs: 100,
    timeoutMs: 10_000,
    maxRetries: 2,
  }),
  names,
  promptFor,
  cache: new JudgeCache(null),
  concurrency: 4,
});

/** The sequential order: sample everything, then judge every row, then rewrite with the judge columns. */
async function sequential(path: string): Promise<void> {
  const results = ResultsFile.resume(path);
  sampleResponses(model, tokenizer, questions, results, sampling);
  await Effect.runPromise(judgeRows(results.rows, judging()));
  results.rewrite(results.rows, names);
}

describe("sampling overlapped with judging", () => {
  it("writes the same file as sampling then judging, with judge requests arriving while sampling runs", async () => {
    await sequential(join(work, "sequential.csv"));
    server.reset();
    const results = ResultsFile.resume(join(work, "overlapped.csv"));
    let lastChunkAt = 0;
    const outcome = await Effect.runPromise(
      sampleAndJudge(
        model,
        tokenizer,
        questions,
        results,
        { ...sampling, onChunk: () => void (lastChunkAt = performance.now()) },
        judging(),
      ),
    );
    expect(outcome.added).toBe(15);
    expect(outcome.judged).toMatchObject({ requested: 30, scored: 30, failed: 0 });
    expect(readFileSync(join(work, "overlapped.csv"), "utf8")).toBe(readFileSync(join(work, "sequential.csv"), "utf8"));
    const early = server.requests.filter((r) => r.receivedAt < lastChunkAt).length;
    expect(early, "judge requests answered before the last chunk was sampled").toBeGreaterThan(0);
  });

  it("interrupted between chunks: every sampled row and every score received is in the file; a rerun completes it", async () => {
    const path = join(work, "interrupted.csv");
    const results = ResultsFile.resume(path);
    // Interrupted once four chunks are sampled and a judge score has come back.
    let chunks = 0;
    let scores = 0;
    let sent = false;
    const maybeStop = () => {
      if (!sent && chunks >= 4 && scores >= 1) {
        sent = true;
        setImmediate(() => fiber.interruptUnsafe());
      }
    };
    const fiber = Effect.runFork(
      sampleAndJudge(
        model,
        tokenizer,
        questions,
        results,
        { ...sampling, onChunk: () => void (++chunks, maybeStop()) },
        { ...judging(), onProgress: (done) => void ((scores = done), maybeStop()) },
      ),
    );
    const exit = await Effect.runPromise(Fiber.await(fiber));
    expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)).toBe(true);
    const onDisk = ResultsFile.resume(path).rows;
    expect(onDisk.length).toBe(results.rows.length);
    expect(onDisk.length).toBeGreaterThanOrEqual(7);
    expect(onDisk.length, "interrupted before sampling finished").toBeLessThan(15);
    const scored = (row: ResultRow) => names.filter((n) => row[n] !== undefined && row[n] !== null && row[n] !== "").length;
    expect(onDisk.map(scored)).toEqual(results.rows.map(scored));
    expect(onDisk.map(scored).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    for (const [i, row] of results.rows.entries())
      for (const n of names) if (typeof row[n] === "number") expect(Number(onDisk[i]![n])).toBe(row[n]);
    const rerun = ResultsFile.resume(path);
    await Effect.runPromise(sampleAndJudge(model, tokenizer, questions, rerun, sampling, judging()));
    expect(readFileSync(path, "utf8")).toBe(readFileSync(join(work, "sequential.csv"), "utf8"));
  });
});
