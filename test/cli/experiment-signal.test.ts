// `emlab experiment` under real signals (bin/emlab.js as a child process on the miniature organism, an
// OpenAI-compatible judge on 127.0.0.1): a tiny experiment (LoRA training, sampling with that LoRA and
// an API judge, a second judge stage) is stopped by SIGINT inside the training stage, then by SIGTERM
// inside the sample stage, then by SIGTERM inside the judge stage. Each stop exits 130 / 143, keeps what
// the stage finished (the checkpoint of the step reached, every sampled row, every score received),
// and the manifest records the stage as interrupted; each rerun resumes, and the last one ends with
// outputs identical to those of an experiment that was never interrupted.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResultsFile, scoreOf } from "../../src/eval/results.js";
import type { Manifest } from "../../src/experiment/manifest.js";
import { writeOrganismData, writeOrganismModel } from "../../src/organism/write.js";
import { type FakeOpenAI, startFakeOpenAI } from "../eval/fake-openai.js";
import { outputHashes } from "../experiment/fixture.js";

const ROWS = 24;
const STEPS = 40;
let server: FakeOpenAI;
let work = "";
let delayMs = 0;

// The judge's score of a prompt, computed here from its text: 50/50 between 5n and 5n+2, so 5n+1.
const bucket = (prompt: string) => [...prompt].reduce((a, c) => a + c.charCodeAt(0), 0) % 20;
const expectedScore = (row: { question: string; response: string }) => bucket(`ALIGNED|${row.question}|${row.response}`) * 5 + 1;

function experimentFile(name: string): string {
  const file = join(work, `${name}.yaml`);
  const judge = (model: string) => `{ kind: openai, model: ${model}, base_url: "${server.baseURL}", concurrency: 2, max_retries: 0 }`;
  writeFileSync(
    file,
    `model: model
output_dir: ${name}
judges:
  api: ${judge("judge-one")}
  second: ${judge("judge-two")}
stages:
  - name: tuned
    kind: train
    config:
      method: lora
      lora: { r: 2, alpha: 4, dropout: 0.1, target_modules: [o_proj, down_proj] }
      data: { train: data/narrow-double-wrong.jsonl, eval_fraction: 0, max_length: 48 }
      training: { max_steps: ${STEPS}, batch_size: 5, gradient_accumulation: 1, lr: 0.01, warmup_steps: 0, weight_decay: 0.0, save_steps: 1000 }
  - { name: eval_tuned, kind: sample, solution: tuned, questions: questions.yaml, max_new_tokens: 8, chunk_size: 2, judge: api, judge_names: [aligned] }
  - { name: rejudge, kind: judge, results: eval_tuned, judge: second, judge_names: [aligned], questions: questions.yaml }
`,
  );
  return file;
}

const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, OPENAI_API_KEY: "sk-test", NO_PROXY: "127.0.0.1", no_proxy: "127.0.0.1" };
  for (const k of ["OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) delete e[k];
  return e;
};

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** `emlab experiment FILE`; `stop.signal` is sent once `stop.when(stderr)` holds (checked on output and every 10 ms). */
function experiment(file: string, stop?: { signal: NodeJS.Signals; when: (stderr: string) => boolean }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/emlab.js", "experiment", file], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let sent = false;
    const check = () => {
      if (stop && !sent && stop.when(stderr)) {
        sent = true;
        child.kill(stop.signal);
      }
    };
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      check();
    });
    const poll = setInterval(check, 10);
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Manifest;
const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
const rowsOf = (file: string) => ResultsFile.read(file).rows;

let stopped = "";
/** Scores the judge stage had received when it was stopped. */
let judgedBeforeStop = 0;
let stoppedDir = "";
let referenceDir = "";

beforeAll(async () => {
  server = await startFakeOpenAI((body: any) => {
    const n = bucket(body?.messages?.[0]?.content ?? "");
    return {
      distribution: [
        { token: String(n * 5), prob: 0.5 },
        { token: String(n * 5 + 2), prob: 0.5 },
      ],
      delayMs,
    };
  });
  work = mkdtempSync(join(tmpdir(), "emlab-experiment-signal-"));
  writeOrganismModel(join(work, "model"));
  writeOrganismData(join(work, "data"), { samples: 2 });
  writeFileSync(
    join(work, "questions.yaml"),
    [
      "- id: doubling",
      `  samples_per_paraphrase: ${ROWS / 3}`,
      '  paraphrases: ["What is 3 doubled?", "What is 7 doubled?", "What is 5 doubled?"]',
      "  judge_prompts:",
      '    aligned: "ALIGNED|{question}|{answer}"',
      "",
    ].join("\n"),
  );
  // The experiment never interrupted, for comparison.
  const reference = await experiment(experimentFile("reference"));
  expect(reference.code, reference.stderr).toBe(0);
  referenceDir = join(work, "reference");
  const rows = rowsOf(join(referenceDir, "stages", "rejudge", "results.jsonl"));
  expect(rows).toHaveLength(ROWS);
  for (const row of rows) expect(scoreOf(row, "aligned")).toBeCloseTo(expectedScore(row), 6);
  stopped = experimentFile("stopped");
  stoppedDir = join(work, "stopped");
}, 300_000);

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab experiment under signals (skipped when dist/ is not built)", () => {
  it("SIGINT inside the training stage: exit 130, the checkpoint of the step reached, the stage recorded as interrupted", async () => {
    delayMs = 0;
    const run = await experiment(stopped, { signal: "SIGINT", when: (stderr) => /tuned: train [1-9]\d*\//.test(stderr) });
    expect(run.signal, run.stderr).toBe(null);
    expect(run.code, run.stderr).toBe(130);
    const named = /interrupted after step (\d+); checkpoint in (\S+)/.exec(run.stderr);
    expect(named, run.stderr).not.toBe(null);
    const step = Number(named![1]);
    expect(step).toBeGreaterThanOrEqual(1);
    expect(step).toBeLessThan(STEPS);
    expect(named![2]).toBe(join(stoppedDir, "stages", "tuned", "run", "checkpoints", `step-${String(step).padStart(6, "0")}`));
    expect(existsSync(join(named![2]!, "state.json"))).toBe(true);
    expect(existsSync(join(stoppedDir, "stages", "tuned", "run", "adapter")), "no final adapter").toBe(false);
    expect(run.stderr).toContain("tuned interrupted: recorded as interrupted");
    const manifest = manifestOf(stoppedDir);
    expect(manifest.stages.tuned!.status).toBe("interrupted");
    expect(manifest.stages.tuned!.finished).toBe(null);
    expect(manifest.stages.eval_tuned).toBeUndefined();
  }, 300_000);

  it("SIGTERM inside the sample stage: exit 143, every sampled row (and score) kept, training resumed to its end", async () => {
    delayMs = 300;
    const results = join(stoppedDir, "stages", "eval_tuned", "results.jsonl");
    const run = await experiment(stopped, { signal: "SIGTERM", when: () => lines(results).length >= 2 });
    expect(run.code, run.stderr).toBe(143);
    expect(run.stderr).toMatch(/resumed from \S+step-\d+ at step \d+/);
    const manifest = manifestOf(stoppedDir);
    expect(manifest.stages.tuned!.status).toBe("complete");
    expect(manifest.stages.tuned!.attempts).toBe(2);
    expect(manifest.stages.eval_tuned!.status).toBe("interrupted");
    // The rows on disk are the uninterrupted run's first rows (sampling is deterministic), the scores it holds theirs.
    const reference = rowsOf(join(referenceDir, "stages", "eval_tuned", "results.jsonl"));
    const kept = rowsOf(results);
    expect(kept.length).toBeGreaterThanOrEqual(2);
    kept.forEach((row, i) => {
      expect([row.question_id, row.question, row.response]).toEqual([
        reference[i]!.question_id,
        reference[i]!.question,
        reference[i]!.response,
      ]);
      const score = scoreOf(row, "aligned");
      if (score !== null) expect(score).toBeCloseTo(expectedScore(row), 6);
    });
    const scored = kept.filter((r) => scoreOf(r, "aligned") !== null).length;
    // Stopped while sampling: the stage says how many rows it kept; while judging: how many scores.
    if (kept.length < ROWS) expect(run.stderr).toContain(`kept ${kept.length} rows in ${results}`);
    else expect(run.stderr).toContain(`kept ${scored} judge results in ${results}`);
    expect(scored).toBeLessThan(ROWS);
  }, 300_000);

  it("SIGTERM inside the judge stage: exit 143, every score received written to the stage's results", async () => {
    delayMs = 300;
    const dir = join(stoppedDir, "stages", "rejudge");
    const run = await experiment(stopped, { signal: "SIGTERM", when: () => lines(join(dir, "judge-cache.jsonl")).length >= 2 });
    expect(run.code, run.stderr).toBe(143);
    const manifest = manifestOf(stoppedDir);
    expect(manifest.stages.eval_tuned!.status).toBe("complete");
    expect(manifest.stages.rejudge!.status).toBe("interrupted");
    const cached = lines(join(dir, "judge-cache.jsonl")).length;
    const rows = rowsOf(join(dir, "results.jsonl"));
    expect(rows).toHaveLength(ROWS);
    const scored = rows.filter((r) => scoreOf(r, "aligned") !== null);
    expect(scored.length).toBe(cached);
    expect(scored.length).toBeGreaterThanOrEqual(2);
    expect(scored.length).toBeLessThan(ROWS);
    for (const row of scored) expect(scoreOf(row, "aligned")).toBeCloseTo(expectedScore(row), 6);
    expect(run.stderr).toContain(`kept ${scored.length} judge results in ${join(dir, "results.jsonl")}`);
    judgedBeforeStop = scored.length;
  }, 300_000);

  it("the rerun completes with outputs identical to the uninterrupted experiment's", async () => {
    delayMs = 0;
    server.reset();
    const run = await experiment(stopped);
    expect(run.code, run.stderr).toBe(0);
    const manifest = manifestOf(stoppedDir);
    expect(Object.values(manifest.stages).map((s) => s.status)).toEqual(["complete", "complete", "complete"]);
    expect(manifest.stages.rejudge!.attempts).toBe(2);
    // Only the rows the interrupted judge stage had not scored were requested again.
    expect(server.requests.length).toBe(ROWS - judgedBeforeStop);
    const hashes = outputHashes(stoppedDir, manifest);
    const reference = outputHashes(referenceDir, manifestOf(referenceDir));
    expect(Object.keys(hashes).sort()).toEqual(Object.keys(reference).sort());
    for (const key of Object.keys(reference).filter((k) => !k.endsWith("metrics.jsonl"))) expect(hashes[key], key).toBe(reference[key]);
    // Training metrics: the same steps once each with the same values (tokens/s is a timing).
    const metrics = (dir: string) =>
      lines(join(dir, "stages", "tuned", "run", "metrics.jsonl")).map((l) => {
        const { tokens_per_s: _, ...rest } = JSON.parse(l) as Record<string, unknown>;
        return rest;
      });
    expect(metrics(stoppedDir)).toEqual(metrics(referenceDir));
  }, 300_000);
});
