// generateEffect (src/generate/generate-effect.ts) on the tiny Qwen2 fixture (vocab 512, 256 positions, no EOS):
// the same ids as the synchronous generate() for the same seed (sampled, several samples, left padding, greedy,
// yielding every k steps); while ONE long run (200 decode steps) is generated, setImmediate callbacks, a 1 ms
// timer and a request to a real HTTP server on 127.0.0.1 are served (the synchronous generate() serves none: the
// control); an interruption requested during a run stops it within one decode step with every tensor freed;
// typed errors (token ids outside the vocabulary) are failures that Effect.catchTag sees.
import { createServer, get, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Cause, Effect, Exit, Fiber } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate, type GenerateOptions } from "../../src/generate/generate.js";
import { generateEffect } from "../../src/generate/generate-effect.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const MODEL = join(import.meta.dirname, "..", "fixtures", "hf", "models", "qwen2");
const PROMPT = [[17, 42, 99, 3]];
const LONG = 200;

let model: LoadedModel;
let server: Server;
let port = 0;

beforeAll(async () => {
  model = loadModel(MODEL);
  server = createServer((_, response) => response.end("pong"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  model?.dispose();
  await new Promise((resolve) => server?.close(resolve));
});
useLeakCheck();

const sampled = (extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  maxNewTokens: 24,
  temperature: 0.9,
  topP: 0.95,
  topK: 50,
  seed: 1234,
  samples: 3,
  eosTokenIds: [],
  padTokenId: 0,
  ...extra,
});

describe("generateEffect gives generate()'s ids", () => {
  it("sampled, 3 samples per prompt, same seed: identical outputIds / newIds / finishReasons", async () => {
    const expected = generate(model.decoder, PROMPT, null, sampled());
    const actual = await Effect.runPromise(generateEffect(model.decoder, PROMPT, null, sampled()));
    expect(actual).toEqual(expected);
    // The comparison can fail: another seed gives other ids.
    expect(generate(model.decoder, PROMPT, null, sampled({ seed: 1235 })).newIds).not.toEqual(expected.newIds);
  });

  it("left-padded prompts with an EOS that ends rows early, greedy and yielding every 5 steps", async () => {
    const ids = [
      [0, 0, 5, 6, 7],
      [8, 9, 10, 11, 12],
    ];
    const mask = [
      [0, 0, 1, 1, 1],
      [1, 1, 1, 1, 1],
    ];
    const free = generate(model.decoder, ids, mask, { greedy: true, maxNewTokens: 16, eosTokenIds: [] });
    // An EOS id the first row chooses at its 4th step: that row stops there, the other goes on.
    const eos = free.newIds[0]![3]!;
    const options = { greedy: true, maxNewTokens: 16, eosTokenIds: [eos], padTokenId: 1 };
    const expected = generate(model.decoder, ids, mask, options);
    expect(expected.finishReasons[0]).toBe("eos");
    const actual = await Effect.runPromise(generateEffect(model.decoder, ids, mask, { ...options, yieldEvery: 5 }));
    expect(actual).toEqual(expected);
  });
});

/** Counts setImmediate turns and 1 ms timer ticks until stopped. */
function eventLoopCounter() {
  const counts = { immediates: 0, timerTicks: 0 };
  let running = true;
  const spin = () => {
    if (!running) return;
    counts.immediates++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const timer = setInterval(() => counts.timerTicks++, 1);
  return {
    counts,
    stop: () => {
      running = false;
      clearInterval(timer);
    },
  };
}

/** GET http://127.0.0.1:port/ — resolves with the body and the decode step at which the reply arrived. */
function request(stepNow: () => number): Promise<{ body: string; atStep: number }> {
  return new Promise((resolve, reject) => {
    get(`http://127.0.0.1:${port}/`, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ body, atStep: stepNow() }));
    }).on("error", reject);
  });
}

describe("the event loop turns during one long run", () => {
  it(`${LONG} decode steps: immediates, timer ticks and an HTTP reply happen before the run ends; generate() serves none`, async () => {
    // Control: the synchronous run holds the event loop for all its steps.
    const blocked = eventLoopCounter();
    generate(model.decoder, PROMPT, null, sampled({ maxNewTokens: LONG, samples: 1 }));
    const blockedCounts = { ...blocked.counts };
    blocked.stop();
    expect(blockedCounts).toEqual({ immediates: 0, timerTicks: 0 });

    let step = -1;
    const counter = eventLoopCounter();
    const reply = request(() => step);
    const result = await Effect.runPromise(
      generateEffect(model.decoder, PROMPT, null, sampled({ maxNewTokens: LONG, samples: 1, onStep: (_, s) => void (step = s) })),
    );
    const counts = { ...counter.counts };
    counter.stop();
    const answered = await reply;
    expect(result.newIds[0]).toHaveLength(LONG);
    expect(answered.body).toBe("pong");
    expect(answered.atStep).toBeGreaterThanOrEqual(0);
    expect(answered.atStep).toBeLessThan(LONG - 1);
    // One yield per step: the spinning setImmediate runs at (nearly) every one of them.
    expect(counts.immediates).toBeGreaterThan(LONG / 2);
    expect(counts.timerTicks).toBeGreaterThan(3);
  });

  it("yieldEvery: 10 yields about a tenth as often (and still before the run ends)", async () => {
    const counter = eventLoopCounter();
    await Effect.runPromise(
      generateEffect(model.decoder, PROMPT, null, { ...sampled({ maxNewTokens: LONG, samples: 1 }), yieldEvery: 10 }),
    );
    const counts = { ...counter.counts };
    counter.stop();
    expect(counts.immediates).toBeGreaterThan(LONG / 10 / 2);
    expect(counts.immediates).toBeLessThanOrEqual(LONG / 10 + 5);
  });
});

describe("interruption", () => {
  it("requested during step 10 of 200, the run stops within one decode step and frees its KV cache and logits", async () => {
    const baseline = liveTensorCount();
    let steps = 0;
    let stepsWhenAsked = -1;
    let duringRun = -1;
    const fiber = Effect.runFork(
      generateEffect(model.decoder, PROMPT, null, {
        ...sampled({ maxNewTokens: LONG, samples: 2 }),
        onStep: () => {
          steps++;
          if (steps === 10) {
            duringRun = liveTensorCount();
            // Asked from outside the fiber, as a signal handler or another fiber would.
            setImmediate(() => {
              stepsWhenAsked = steps;
              Effect.runFork(Fiber.interrupt(fiber));
            });
          }
        },
      }),
    );
    const exit = await Effect.runPromise(Fiber.await(fiber));
    expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)).toBe(true);
    expect(stepsWhenAsked).toBeGreaterThanOrEqual(10);
    expect(steps - stepsWhenAsked).toBeLessThanOrEqual(1);
    expect(steps).toBeLessThan(LONG);
    expect(duringRun).toBeGreaterThan(baseline); // the run held tensors, and gave them back
    expect(liveTensorCount()).toBe(baseline);
  });
});

describe("typed errors are failures", () => {
  it("a prompt id outside the vocabulary (512) fails with TokenIdError, caught by catchTag; nothing leaks", async () => {
    const caught = await Effect.runPromise(
      generateEffect(model.decoder, [[1, 2, 512]], null, sampled()).pipe(
        Effect.map(() => "generated"),
        Effect.catchTag("TokenIdError", (e) => Effect.succeed(`${e.id} at ${e.position!.join(",")}`)),
      ),
    );
    expect(caught).toBe("512 at 0,2");
  });
});
