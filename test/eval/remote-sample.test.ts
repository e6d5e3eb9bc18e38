// Sampling evaluation answers through an OpenAI-compatible server (src/eval/remote-sample.ts) against
// the real `emlab serve` on 127.0.0.1 with a tiny random Qwen2 and the real Qwen2.5 tokenizer: the same
// rows as local sampling for the same seeds (also with requests in flight together and a LoRA module),
// resume without re-requesting rows, typed errors; and from the CLI: `emlab eval --sample-endpoint`
// against an `emlab serve` child equals a local `emlab eval`, a server killed mid-run fails the eval
// with a RemoteSamplingError and a resumable file, and after a restart the resume completes it with
// every row once.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { Effect, Fiber } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapters } from "../../src/adapters/adapter-dirs.js";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { savePeftAdapter } from "../../src/adapters/peft.js";
import type { Question } from "../../src/eval/questions.js";
import { RemoteSamplingError, sampleResponsesRemote, sampleResponsesRemoteEffect } from "../../src/eval/remote-sample.js";
import { ResultsFile } from "../../src/eval/results.js";
import { sampleResponses } from "../../src/eval/sample.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { ServedModels } from "../../src/serve/models.js";
import { type RunningServer, startServer } from "../../src/serve/server.js";
import { manualSeed } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { EVAL_SAMPLING, evalQuestions, evalQuestionsYaml } from "../helpers/eval-setup.js";
import { makeTinyModel } from "../helpers/tiny-model.js";

const questions: Question[] = evalQuestions({ one: 5, two: 4 });

const questionYaml = evalQuestionsYaml({ samples: 12 });

let work: string;
let modelDir: string;
let loraDir: string;
let model: LoadedModel;
let tokenizer: ChatTokenizer;
let models: ServedModels;
let server: RunningServer;

const keyed = (rows: readonly { question_id: string; question: string; response: string }[]) =>
  rows.map((r) => `${r.question_id}|${r.question}|${r.response}`);
const options = EVAL_SAMPLING;

beforeAll(async () => {
  ({ work, modelDir } = makeTinyModel("emlab-remote-sample-", 2));
  loraDir = join(work, "lora");
  model = loadModel(modelDir);
  manualSeed(3);
  const adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 8, targetModules: ["q_proj", "down_proj"] }, { initB: "random" });
  savePeftAdapter(loraDir, adapter);
  adapter.dispose();
  tokenizer = ChatTokenizer.fromDir(modelDir);
  models = new ServedModels({ modelDir, servedName: "tiny", lora: [{ name: "tiny-lora", dir: loraDir }] });
  server = await startServer(models, { port: 0 });
}, 120_000);

afterAll(async () => {
  await server?.close();
  models?.dispose();
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe("remote sampling (in process)", () => {
  it("gives the local engine's rows for the same seeds, in the same order, with 1 or 3 requests in flight", async () => {
    const local = ResultsFile.resume(join(work, "local.jsonl"));
    expect(sampleResponses(model, tokenizer, questions, local, options)).toBe(13);
    for (const concurrency of [1, 3]) {
      const remote = ResultsFile.resume(join(work, `remote-${concurrency}.jsonl`));
      expect(await sampleResponsesRemote({ url: `${server.url}/v1`, model: "tiny", concurrency }, questions, remote, options)).toBe(13);
      expect(keyed(ResultsFile.resume(join(work, `remote-${concurrency}.jsonl`)).rows)).toEqual(keyed(local.rows));
    }
    // A bare host:port URL is the /v1 base.
    const bare = ResultsFile.resume(join(work, "bare.jsonl"));
    await sampleResponsesRemote({ url: server.url, model: "tiny" }, questions, bare, options);
    expect(keyed(bare.rows)).toEqual(keyed(local.rows));
  });

  it("a LoRA module name samples what the local engine samples with the adapter attached", async () => {
    const adapters = loadPeftAdapters(loraDir, model);
    for (const a of adapters) model.decoder.adapters.attach(a);
    const local = ResultsFile.resume(join(work, "local-lora.jsonl"));
    try {
      sampleResponses(model, tokenizer, questions, local, options);
    } finally {
      for (const a of adapters) {
        model.decoder.adapters.detach(a);
        a.dispose();
      }
    }
    const remote = ResultsFile.resume(join(work, "remote-lora.jsonl"));
    await sampleResponsesRemote({ url: `${server.url}/v1`, model: "tiny-lora" }, questions, remote, options);
    expect(keyed(remote.rows)).toEqual(keyed(local.rows));
    expect(keyed(remote.rows)).not.toEqual(keyed(ResultsFile.resume(join(work, "local.jsonl")).rows));
  });

  it("resumes: rows in the file are not requested again, a cut chunk is completed, the result equals a full run", async () => {
    const full = keyed(ResultsFile.resume(join(work, "local.jsonl")).rows);
    const file = join(work, "resume.jsonl");
    // 3 rows of q_one written earlier (chunk 1 cut after its first row).
    const partial = ResultsFile.resume(file);
    partial.append(
      ResultsFile.resume(join(work, "local.jsonl"))
        .rows.slice(0, 3)
        .map((r) => ({ response: r.response, question: r.question, question_id: r.question_id })),
    );
    const before = server.engine.batches.reduce((a, b) => a + b, 0);
    const added = await sampleResponsesRemote(
      { url: `${server.url}/v1`, model: "tiny", concurrency: 1 },
      questions,
      ResultsFile.resume(file),
      options,
    );
    expect(added).toBe(10);
    expect(keyed(ResultsFile.resume(file).rows)).toEqual(full);
    // Chunks requested: q_one chunk 1 (cut) and 2, then 2 + 2 chunks of q_two = 6 (not the 7 of a fresh run).
    expect(server.engine.batches.reduce((a, b) => a + b, 0) - before).toBe(6);
    expect(await sampleResponsesRemote({ url: `${server.url}/v1`, model: "tiny" }, questions, ResultsFile.resume(file), options)).toBe(0);
  });

  it("as an Effect: interrupting it stops appending; running it again completes the file as a full run", async () => {
    const many: Question[] = [{ ...questions[0]!, samplesPerParaphrase: 40 }];
    const opts = { ...options, maxNewTokens: 12, chunkSize: 1 };
    const endpoint = { url: `${server.url}/v1`, model: "tiny", concurrency: 2 };
    const full = ResultsFile.resume(join(work, "effect-full.jsonl"));
    await Effect.runPromise(sampleResponsesRemoteEffect(endpoint, many, full, opts));
    const file = join(work, "effect-cut.jsonl");
    const results = ResultsFile.resume(file);
    const fiber = Effect.runFork(sampleResponsesRemoteEffect(endpoint, many, results, opts));
    while (results.rows.length < 3) await new Promise((r) => setTimeout(r, 5));
    await Effect.runPromise(Fiber.interrupt(fiber));
    const cut = ResultsFile.resume(file).rows.length;
    expect(cut).toBeLessThan(40);
    await new Promise((r) => setTimeout(r, 300));
    expect(ResultsFile.resume(file).rows.length).toBe(cut);
    await Effect.runPromise(sampleResponsesRemoteEffect(endpoint, many, ResultsFile.resume(file), opts));
    expect(keyed(ResultsFile.resume(file).rows)).toEqual(keyed(full.rows));
  });

  it("typed errors: an unknown model, a refused connection (after retries), a bad URL; nothing written", async () => {
    const file = join(work, "errors.jsonl");
    const attempt = (endpoint: { url: string; model: string; retries?: number; retryDelayMs?: number }) =>
      sampleResponsesRemote(endpoint, questions, ResultsFile.resume(file), options);
    await expect(attempt({ url: `${server.url}/v1`, model: "missing" })).rejects.toMatchObject({
      _tag: "RemoteSamplingError",
      status: 404,
    });
    const closed = await closedPort();
    await expect(attempt({ url: `http://127.0.0.1:${closed}/v1`, model: "tiny", retries: 1, retryDelayMs: 10 })).rejects.toThrow(
      /ECONNREFUSED.*after 2 attempts/,
    );
    await expect(attempt({ url: "not a url", model: "tiny" })).rejects.toBeInstanceOf(RemoteSamplingError);
    expect(existsSync(file) ? ResultsFile.resume(file).rows.length : 0).toBe(0);
  });
});

/** A port nothing listens on (bound, then closed). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 300_000, env: { ...process.env, ...env } });

/** Starts `emlab serve` as a child on a free port; resolves with its URL once it listens. */
function serveChild(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, ["bin/emlab.js", "serve", "--port", "0", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match) resolve({ child, url: match[1]!, stderr: () => stderr });
    });
    child.on("exit", (code) => reject(new Error(`emlab serve exited with ${code}: ${stderr}`)));
  });
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.on("exit", (code) => resolve(code)),
  );

describe("emlab serve and emlab eval --sample-endpoint (child processes)", () => {
  it("serve refuses a non-loopback host without --allow-non-loopback and a key, before loading anything", () => {
    const r = cli(["serve", "--model", modelDir, "--host", "0.0.0.0", "--port", "0"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ServeConfigError: --host 0.0.0.0 is not a loopback address/);
    const noKey = cli(["serve", "--model", modelDir, "--host", "0.0.0.0", "--port", "0", "--allow-non-loopback"]);
    expect(noKey.stderr).toMatch(/an API key is required/);
    const unsetKey = cli([
      "serve",
      "--model",
      modelDir,
      "--host",
      "0.0.0.0",
      "--port",
      "0",
      "--allow-non-loopback",
      "--api-key-env",
      "EMLAB_TEST_UNSET_KEY",
    ]);
    expect(unsetKey.status).toBe(2);
    expect(unsetKey.stderr).toMatch(/EMLAB_TEST_UNSET_KEY is not set/);
  });

  it("eval refuses inconsistent endpoint options before writing anything", () => {
    const questionsFile = join(work, "questions-usage.yaml");
    writeFileSync(questionsFile, questionYaml);
    const out = join(work, "usage.jsonl");
    const base = ["eval", "--questions", questionsFile, "--out", out, "--no-judge"];
    const cases: [string[], RegExp][] = [
      [["--sample-endpoint", "http://127.0.0.1:8000/v1"], /--sample-endpoint needs --sample-model/],
      [["--sample-model", "tiny"], /--sample-model needs --sample-endpoint/],
      [
        ["--sample-endpoint", "http://127.0.0.1:8000/v1", "--sample-model", "tiny", "--model", modelDir],
        /--model does not apply with --sample-endpoint/,
      ],
      [["--sample-endpoint", "ftp://x", "--sample-model", "tiny"], /expected http/],
      [
        ["--sample-endpoint", "http://127.0.0.1:8000/v1", "--sample-model", "tiny", "--sample-api-key-env", "EMLAB_TEST_UNSET_KEY"],
        /EMLAB_TEST_UNSET_KEY is not set/,
      ],
      [[], /--model is required/],
    ];
    for (const [args, message] of cases) {
      const r = cli([...base, ...args]);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(existsSync(out)).toBe(false);
  }, 120_000);

  it("Ctrl-C during eval --sample-endpoint: exit 130, the rows so far on disk, nothing appended after; a rerun completes it", async () => {
    const questionsFile = join(work, "questions-sigint.yaml");
    writeFileSync(questionsFile, questionYaml);
    const common = [
      "--questions",
      questionsFile,
      "--no-judge",
      "--samples",
      "12",
      "--seed",
      "5",
      "--max-new-tokens",
      "8",
      "--chunk-size",
      "1",
    ];
    const served = await serveChild(["--model", modelDir, "--served-model-name", "tiny"]);
    try {
      const out = join(work, "sigint.jsonl");
      const args = ["bin/emlab.js", "eval", "--sample-endpoint", `${served.url}/v1`, "--sample-model", "tiny", "--out", out, ...common];
      const run = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      run.stderr!.on("data", (d: Buffer) => void (err += d.toString()));
      const deadline = Date.now() + 120_000;
      while (
        Date.now() < deadline &&
        !(existsSync(out) && readFileSync(out, "utf8").split("\n").filter(Boolean).length >= 3) &&
        run.exitCode === null
      )
        await new Promise((r) => setTimeout(r, 20));
      run.kill("SIGINT");
      expect(await exited(run), err).toBe(130);
      const cut = ResultsFile.read(out).rows.length;
      expect(cut).toBeLessThan(36);
      await new Promise((r) => setTimeout(r, 500));
      expect(ResultsFile.read(out).rows.length).toBe(cut);
      const again = cli(args.slice(1));
      expect(again.status, again.stderr).toBe(0);
      const full = join(work, "sigint-full.jsonl");
      expect(cli(["eval", "--sample-endpoint", `${served.url}/v1`, "--sample-model", "tiny", "--out", full, ...common]).status).toBe(0);
      expect(keyed(ResultsFile.read(out).rows)).toEqual(keyed(ResultsFile.read(full).rows));
    } finally {
      served.child.kill("SIGTERM");
      await exited(served.child);
    }
  }, 300_000);

  it("eval through the server equals a local eval; a killed server fails it resumably; a restart completes it", async () => {
    const questionsFile = join(work, "questions.yaml");
    writeFileSync(questionsFile, questionYaml);
    const common = [
      "--questions",
      questionsFile,
      "--no-judge",
      "--samples",
      "12",
      "--seed",
      "11",
      "--max-new-tokens",
      "8",
      "--chunk-size",
      "2",
    ];
    const localOut = join(work, "cli-local.jsonl");
    const local = cli(["eval", "--model", modelDir, "--out", localOut, ...common]);
    expect(local.status, local.stderr).toBe(0);
    const localRows = keyed(ResultsFile.read(localOut).rows);
    expect(localRows).toHaveLength(36);

    const key = "emlab-test-key-0123456789";
    const env = { EMLAB_TEST_SERVE_KEY: key };
    let served = await serveChild(["--model", modelDir, "--served-model-name", "tiny", "--api-key-env", "EMLAB_TEST_SERVE_KEY"], env);
    const out = join(work, "cli-remote.jsonl");
    const evalArgs = () => [
      "eval",
      "--sample-endpoint",
      `${served.url}/v1`,
      "--sample-model",
      "tiny",
      "--sample-api-key-env",
      "EMLAB_TEST_SERVE_KEY",
      "--sample-concurrency",
      "2",
      "--out",
      out,
      ...common,
    ];
    // Kill the server as soon as the first rows are written.
    const run = spawn(process.execPath, ["bin/emlab.js", ...evalArgs()], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let evalErr = "";
    run.stderr!.on("data", (d: Buffer) => void (evalErr += d.toString()));
    const deadline = Date.now() + 120_000;
    while (
      Date.now() < deadline &&
      !(existsSync(out) && readFileSync(out, "utf8").split("\n").filter(Boolean).length >= 2) &&
      run.exitCode === null
    )
      await new Promise((r) => setTimeout(r, 20));
    served.child.kill("SIGKILL");
    await exited(served.child);
    const code = await exited(run);
    expect(code, evalErr).toBe(1);
    expect(evalErr).toMatch(/RemoteSamplingError: .*(ECONNREFUSED|ECONNRESET|request failed)/);
    expect(evalErr).not.toContain(key);
    const partial = ResultsFile.read(out).rows;
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(36);
    expect(keyed(partial)).toEqual(localRows.slice(0, partial.length));

    served = await serveChild(["--model", modelDir, "--served-model-name", "tiny", "--api-key-env", "EMLAB_TEST_SERVE_KEY"], env);
    try {
      const resumed = cli(evalArgs(), env);
      expect(resumed.status, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain(`sampled ${36 - partial.length} new rows (36 in ${out})`);
      expect(keyed(ResultsFile.read(out).rows)).toEqual(localRows);
      expect(readFileSync(out, "utf8")).not.toContain(key);
      // Without the key the server refuses (401), and eval says so.
      const refused = cli([
        "eval",
        "--sample-endpoint",
        `${served.url}/v1`,
        "--sample-model",
        "tiny",
        "--out",
        join(work, "refused.jsonl"),
        ...common,
      ]);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/RemoteSamplingError: .*HTTP 401/);
    } finally {
      served.child.kill("SIGTERM");
      expect(await exited(served.child)).toBe(0);
    }
  }, 300_000);
});
