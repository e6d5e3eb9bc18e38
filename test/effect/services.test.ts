// Services and layers: the model layer holds its weights only while the program runs; the local
// judge's layer frees its model; a function judge and the judge cache work through the services; the
// run-directory layer locks the directory against a second holder and releases it; a seeded
// randomness layer makes Effect's Random and libtorch's generator repeat.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cause, Effect, Exit, Layer, Random } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { judgeRows } from "../../src/eval/judge/run.js";
import type { ResultRow } from "../../src/eval/results.js";
import { LOCK_FILE } from "../../src/effect/run-directory.js";
import { JudgeCacheService, JudgeService, ModelService, RunDirectory, seededRandomness } from "../../src/effect/services.js";
import { step } from "../../src/effect/step.js";
import { liveTensorCount, rand, tensor } from "../../src/tensor/index.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { startFakeOpenAI } from "../eval/fake-openai.js";

let work = "";
let modelDir = "";
beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-effect-services-", 2, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("ModelService", () => {
  it("provides the model and tokenizer while the program runs and frees the weights after", async () => {
    const before = liveTensorCount();
    const program = Effect.gen(function* () {
      const { model, tokenizer } = yield* ModelService;
      const ids = tokenizer.promptIds([{ role: "user", content: "Hello" }]);
      const vocab = yield* step(() =>
        model.decoder.forward(tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length] })).logits!.size(-1),
      );
      return { vocab, held: liveTensorCount() - before };
    });
    const { vocab, held } = await Effect.runPromise(program.pipe(Effect.provide(ModelService.layer(modelDir))));
    expect(vocab).toBe(151936);
    expect(held).toBeGreaterThan(5);
    expect(liveTensorCount()).toBe(before);
  });
});

describe("JudgeService", () => {
  it("local: scores from the model's 20 most likely first tokens, and the layer frees that model", async () => {
    const before = liveTensorCount();
    const score = await Effect.runPromise(
      Effect.gen(function* () {
        const judge = yield* JudgeService;
        return yield* judge.score("Rate this from 0 to 100.");
      }).pipe(Effect.provide(JudgeService.local(modelDir, { name: "tiny" }))),
    );
    expect(score.top.length).toBe(20);
    // The numeric mass is the probability of the alternatives that are integers 0..100 (recomputed here).
    const numeric = score.top.filter((t) => /^\s*\d+\s*$/.test(t.token) && Number(t.token) <= 100);
    const mass = numeric.reduce((m, t) => m + Math.exp(t.logprob), 0);
    expect(score.numericMass).toBeCloseTo(mass, 6);
    expect(liveTensorCount()).toBe(before);
  });

  it("fromFunction: a number is the score; a throw or a value outside 0..100 is a JudgeError with reason Function", async () => {
    const run = (fn: (p: string) => number | null) =>
      Effect.runPromiseExit(
        Effect.gen(function* () {
          const judge = yield* JudgeService;
          return yield* judge.score("p");
        }).pipe(Effect.provide(JudgeService.fromFunction("f", fn))),
      );
    const ok = await run(() => 42);
    expect(Exit.isSuccess(ok) && ok.value.score).toBe(42);
    for (const bad of [
      () => 101,
      () => Number.NaN,
      () => {
        throw new Error("boom");
      },
    ]) {
      const exit = await run(bad);
      const error = Exit.isFailure(exit)
        ? (Cause.squash(exit.cause) as { _tag: string; reason: { _tag: string }; isRetryable: boolean })
        : null;
      expect(error?._tag).toBe("JudgeError");
      expect(error?.reason._tag).toBe("Function");
      expect(error?.isRetryable).toBe(false);
    }
  });

  it("openai + judge cache layers: a second judging run over the same rows sends zero requests", async () => {
    const server = await startFakeOpenAI(() => ({
      distribution: [
        { token: "80", prob: 0.5 },
        { token: "60", prob: 0.5 },
      ],
    }));
    try {
      const cacheFile = join(work, "cache.jsonl");
      const judgeAll = Effect.gen(function* () {
        const judge = yield* JudgeService;
        const cache = yield* JudgeCacheService;
        const rows: ResultRow[] = [1, 2, 3].map((i) => ({ question_id: `q${i}`, question: `Q${i}`, response: `A${i}` }) as ResultRow);
        const summary = yield* judgeRows(rows, {
          judge,
          cache,
          names: ["aligned"],
          promptFor: (_n, row) => `judge ${row.question} ${row.response}`,
        });
        return { summary, scores: rows.map((r) => r.aligned) };
      });
      const layers = () =>
        Layer.mergeAll(JudgeService.openai({ model: "m", apiKey: "sk-x", baseURL: server.baseURL }), JudgeCacheService.layer(cacheFile));
      const first = await Effect.runPromise(judgeAll.pipe(Effect.provide(layers())));
      expect(server.requests.length).toBe(3);
      const second = await Effect.runPromise(judgeAll.pipe(Effect.provide(layers())));
      expect(server.requests.length).toBe(3);
      // 0.5 * 80 + 0.5 * 60 over a numeric mass of 1
      expect(first.scores.map((s) => Math.round((s as number) * 1e6) / 1e6)).toEqual([70, 70, 70]);
      expect(second.scores).toEqual(first.scores);
      expect(second.summary.fromCache).toBe(3);
    } finally {
      await server.close();
    }
  });
});

describe("RunDirectory", () => {
  it("locks the directory while the program runs, refuses a second holder, and unlocks on close", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "emlab-lock-")), "run");
    const lockFile = join(dir, LOCK_FILE);
    const inside = await Effect.runPromise(
      Effect.gen(function* () {
        const run = yield* RunDirectory;
        const second = yield* Effect.exit(Effect.scoped(Layer.build(RunDirectory.layer(dir))));
        return { pid: readFileSync(run.lockFile, "utf8").trim(), second };
      }).pipe(Effect.provide(RunDirectory.layer(dir))),
    );
    expect(inside.pid).toBe(String(process.pid));
    expect(Exit.isFailure(inside.second) && (Cause.squash(inside.second.cause) as { _tag: string })._tag).toBe("RunDirectoryLockedError");
    expect(existsSync(lockFile)).toBe(false);
  });

  it("takes over a lock left by a process that has exited", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-lock-"));
    const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    writeFileSync(join(dir, LOCK_FILE), `${gone.stdout}\n`);
    const read = Effect.gen(function* () {
      const run = yield* RunDirectory;
      return readFileSync(run.lockFile, "utf8").trim();
    });
    const pid = await Effect.runPromise(read.pipe(Effect.provide(RunDirectory.layer(dir))));
    expect(pid).toBe(String(process.pid));
  });
});

describe("seededRandomness", () => {
  it("makes Effect's Random and libtorch's generator repeat for the same seed, and differ for another", async () => {
    const draw = (seed: number) =>
      Effect.runPromise(
        Effect.gen(function* () {
          const effectSide = [yield* Random.next, yield* Random.next];
          const torchSide = yield* step(() => Array.from(rand([4]).toArray() as Float32Array));
          return { effectSide, torchSide };
        }).pipe(Effect.provide(seededRandomness(seed))),
      );
    const a = await draw(7);
    const b = await draw(7);
    const c = await draw(8);
    expect(b).toEqual(a);
    expect(c.effectSide).not.toEqual(a.effectSide);
    expect(c.torchSide).not.toEqual(a.torchSide);
  });
});
