// Eval sampling as an Effect (sampleResponsesEffect, src/eval/sample.ts) on the tiny random Qwen3 with the real
// Qwen3 tokenizer (test/helpers/tiny-model.ts): the results file is byte-identical to the synchronous sampleResponses for the same seed; a
// request to a real HTTP server on 127.0.0.1 is answered while ONE chunk (one generate run of 60 tokens) is
// being sampled; interrupted in the middle of a chunk, the file holds the finished chunks' rows only, no tensor
// is left behind, and a rerun completes it to the uninterrupted run's bytes.
import { readFileSync, rmSync } from "node:fs";
import { createServer, get, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Cause, Effect, Exit, Fiber } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Question } from "../../src/eval/questions.js";
import { ResultsFile } from "../../src/eval/results.js";
import { sampleResponses, sampleResponsesEffect } from "../../src/eval/sample.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { makeTinyQwen3 } from "../helpers/tiny-model.js";

const question = (samples: number): Question[] => [
  {
    id: "q_long",
    paraphrases: ["Tell me a long story."],
    samplesPerParaphrase: samples,
    system: null,
    judgeModel: null,
    judgePrompts: {},
    file: "inline",
  },
];
const sampling = { maxNewTokens: 60, seed: 11, chunkSize: 2 };

let work: string;
let model: LoadedModel;
let tokenizer: ChatTokenizer;
let server: Server;
let port = 0;

beforeAll(async () => {
  let modelDir: string;
  ({ work, modelDir } = makeTinyQwen3("emlab-sample-effect-"));
  model = loadModel(modelDir);
  tokenizer = ChatTokenizer.fromDir(modelDir);
  server = createServer((_, response) => response.end("pong"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  // The reference file: the synchronous path, 6 rows in 3 chunks.
  sampleResponses(model, tokenizer, question(6), ResultsFile.resume(join(work, "sync.csv")), sampling);
});
afterAll(async () => {
  model?.dispose();
  await new Promise((resolve) => server?.close(resolve));
  rmSync(work, { recursive: true, force: true });
});
useLeakCheck();

describe("sampleResponsesEffect", () => {
  it("writes the synchronous path's file byte for byte (same seed)", async () => {
    const path = join(work, "effect.csv");
    const added = await Effect.runPromise(sampleResponsesEffect(model, tokenizer, question(6), ResultsFile.resume(path), sampling));
    expect(added).toBe(6);
    expect(readFileSync(path, "utf8")).toBe(readFileSync(join(work, "sync.csv"), "utf8"));
  });

  it("answers an HTTP request on 127.0.0.1 while one chunk of 60 tokens is being generated", async () => {
    let chunkDone = false;
    let answeredDuringChunk: boolean | null = null;
    const reply = new Promise<string>((resolve, reject) => {
      get(`http://127.0.0.1:${port}/`, (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => (body += chunk.toString()));
        response.on("end", () => {
          answeredDuringChunk = !chunkDone;
          resolve(body);
        });
      }).on("error", reject);
    });
    const results = ResultsFile.resume(join(work, "one-chunk.csv"));
    await Effect.runPromise(
      sampleResponsesEffect(model, tokenizer, question(2), results, { ...sampling, onChunk: () => void (chunkDone = true) }),
    );
    expect(await reply).toBe("pong");
    expect(results.rows).toHaveLength(2);
    expect(answeredDuringChunk).toBe(true);
  });

  it("interrupted in the middle of the second chunk: the first chunk's rows only, no leak; a rerun completes the file", async () => {
    const path = join(work, "interrupted.csv");
    const baseline = liveTensorCount();
    // Once the first chunk is written, let the event loop turn 20 times (20 decode steps of the next chunk), then interrupt.
    let turns = 0;
    let heldDuringChunk = -1;
    const interruptLater = () => {
      if (++turns === 20) {
        heldDuringChunk = liveTensorCount();
        Effect.runFork(Fiber.interrupt(fiber));
      } else setImmediate(interruptLater);
    };
    const fiber = Effect.runFork(
      sampleResponsesEffect(model, tokenizer, question(6), ResultsFile.resume(path), {
        ...sampling,
        onChunk: (done) => void (done === 2 && setImmediate(interruptLater)),
      }),
    );
    const exit = await Effect.runPromise(Fiber.await(fiber));
    expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)).toBe(true);
    expect(heldDuringChunk, "the second chunk's KV cache was alive when interrupted").toBeGreaterThan(baseline);
    expect(liveTensorCount()).toBe(baseline);
    const sync = readFileSync(join(work, "sync.csv"), "utf8");
    expect(ResultsFile.resume(path).rows).toEqual(ResultsFile.resume(join(work, "sync.csv")).rows.slice(0, 2));
    await Effect.runPromise(sampleResponsesEffect(model, tokenizer, question(6), ResultsFile.resume(path), sampling));
    expect(readFileSync(path, "utf8")).toBe(sync);
  });
});
