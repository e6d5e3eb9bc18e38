// Sampling answers for evaluation (src/eval/sample.ts) on a small random model with the real Qwen3
// tokenizer: rows per paraphrase, chat-template prompts with system prompts, determinism for a seed,
// resuming after an interruption (in process, and a killed `emlab eval` child) with each row exactly
// once and the same rows as an uninterrupted run; the local judge's protocol.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalJudge } from "../../src/eval/judge/local.js";
import { scoreFromTopLogprobs } from "../../src/eval/judge/score.js";
import type { Question } from "../../src/eval/questions.js";
import { ResultsFile } from "../../src/eval/results.js";
import { sampleResponses } from "../../src/eval/sample.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { EVAL_SAMPLING, evalQuestions, evalQuestionsYaml } from "../helpers/eval-setup.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { writeTinyQwen3 } from "../helpers/tiny-model.js";

const questionYaml = evalQuestionsYaml({ samples: 5 });

const questions: Question[] = evalQuestions();

describe("sampling for evaluation", () => {
  let work: string;
  let modelDir: string;
  let model: LoadedModel;
  let tokenizer: ChatTokenizer;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "emlab-sample-"));
    modelDir = join(work, "model");
    writeTinyQwen3(modelDir);
    writeFileSync(join(work, "questions.yaml"), questionYaml);
    model = loadModel(modelDir);
    tokenizer = ChatTokenizer.fromDir(modelDir);
  });
  afterAll(() => {
    model.dispose();
    rmSync(work, { recursive: true, force: true });
  });
  useLeakCheck();

  const options = EVAL_SAMPLING;
  const keyed = (rows: { question_id: string; question: string; response: string }[]) =>
    rows.map((r) => `${r.question_id}|${r.question}|${r.response}`);

  it("writes samples_per_paraphrase rows per paraphrase, deterministically for a seed", () => {
    const a = ResultsFile.resume(join(work, "a.jsonl"));
    expect(sampleResponses(model, tokenizer, questions, a, options)).toBe(15);
    const counts = new Map<string, number>();
    for (const r of a.rows) counts.set(`${r.question_id}|${r.question}`, (counts.get(`${r.question_id}|${r.question}`) ?? 0) + 1);
    expect([...counts.values()]).toEqual([5, 5, 5]);
    const b = ResultsFile.resume(join(work, "b.csv"));
    sampleResponses(model, tokenizer, questions, b, options);
    expect(keyed(ResultsFile.resume(join(work, "b.csv")).rows)).toEqual(keyed(a.rows));
    // A run that finds every row present adds nothing.
    expect(sampleResponses(model, tokenizer, questions, ResultsFile.resume(join(work, "a.jsonl")), options)).toBe(0);
  });

  it("resumes an interrupted run (including a record cut mid-write) to the same rows, each once", () => {
    const reference = ResultsFile.resume(join(work, "reference.csv"));
    sampleResponses(model, tokenizer, questions, reference, options);
    const path = join(work, "interrupted.csv");
    const first = ResultsFile.resume(path);
    let chunks = 0;
    expect(() =>
      sampleResponses(model, tokenizer, questions, first, {
        ...options,
        onChunk: () => {
          if (++chunks === 4) throw new Error("interrupted");
        },
      }),
    ).toThrow("interrupted");
    // Simulate a kill in the middle of the next append: half a record at the end of the file.
    writeFileSync(path, `${readFileSync(path, "utf8")}"partial answer, cut`, { flag: "w" });
    const resumed = ResultsFile.resume(path);
    expect(resumed.setAside).not.toBeNull();
    expect(readFileSync(resumed.setAside!.file, "utf8")).toBe('"partial answer, cut');
    expect(resumed.rows.length).toBe(7); // 3 full chunks of 2 and 1 row: q_one 5 + q_two/colour 2
    sampleResponses(model, tokenizer, questions, resumed, options);
    expect(keyed(ResultsFile.resume(path).rows)).toEqual(keyed(reference.rows));
  });

  it("local judge: the prompt's next-token top 20 under the chat template, scored by the study's rule", () => {
    const judge = new LocalJudge(model, tokenizer);
    const prompt = "Rate this answer from 0 to 100: 'Hello'.";
    const top = judge.topLogprobs(prompt);
    expect(top.length).toBe(20);
    // Independent computation: forward the rendered prompt and take the top 20 of log_softmax.
    const ids = tokenizer.encodeChat([{ role: "user", content: prompt }], { addGenerationPrompt: true });
    const expected = tidy(() => {
      const logits = model.decoder.forward(tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length] })).logits!;
      const logprobs = Array.from(
        logits
          .select(1, ids.length - 1)
          .reshape(-1)
          .logSoftmax(-1)
          .toArray() as Float32Array,
      );
      return logprobs
        .map((lp, id) => ({ id, lp }))
        .sort((x, y) => y.lp - x.lp)
        .slice(0, 20);
    });
    top.forEach((t, i) => {
      expect(t.token).toBe(tokenizer.decode([expected[i]!.id]));
      expect(Math.abs(t.logprob - expected[i]!.lp)).toBeLessThan(1e-4);
    });
    const result = Effect.runSync(judge.score(prompt));
    expect(result).toEqual(scoreFromTopLogprobs(top));
  });

  const built = existsSync("dist/cli/main.js");
  it.skipIf(!built)("a killed `emlab eval` resumes with each row exactly once (skipped when dist/ is not built)", async () => {
    const args = (out: string) => [
      "bin/emlab.js",
      "eval",
      "--model",
      modelDir,
      "--questions",
      join(work, "questions.yaml"),
      "--out",
      out,
      "--samples",
      "4",
      "--max-new-tokens",
      "6",
      "--seed",
      "3",
      "--chunk-size",
      "1",
      "--no-judge",
      "--json",
    ];
    const reference = join(work, "cli-reference.csv");
    const full = spawn(process.execPath, args(reference), { stdio: "ignore" });
    await new Promise((resolve) => full.on("exit", resolve));
    const path = join(work, "cli-killed.csv");
    const child = spawn(process.execPath, args(path), { stdio: ["ignore", "ignore", "pipe"] });
    await new Promise<void>((resolve) => {
      let seen = "";
      child.stderr!.on("data", (chunk: Buffer) => {
        seen += chunk.toString();
        if (/sample [3-9]\//.test(seen)) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.on("exit", () => resolve());
    });
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.on("exit", resolve)));
    const partial = ResultsFile.resume(path).rows.length;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(12);
    const rerun = spawn(process.execPath, args(path), { stdio: "ignore" });
    const code = await new Promise((resolve) => rerun.on("exit", resolve));
    expect(code).toBe(0);
    expect(keyed(ResultsFile.resume(path).rows)).toEqual(keyed(ResultsFile.resume(reference).rows));
  });
});
