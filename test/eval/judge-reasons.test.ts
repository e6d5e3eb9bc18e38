// JudgeError reasons and the Schedule-based retry policy against a real HTTP server on 127.0.0.1:
// each kind of failure (429 with and without Retry-After, 5xx, 4xx, a garbage body, a reply slower
// than the timeout, a refused connection) ends in the reason that names it with the right
// isRetryable; retries are bounded, back off exponentially within the jitter band, and wait out a
// server's Retry-After; a seeded Random gives the same delays twice.
import { createServer } from "node:net";
import { Cause, Effect, Exit, Random } from "effect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { JudgeError } from "../../src/eval/judge/judge.js";
import { OpenAIJudge, type OpenAIJudgeOptions } from "../../src/eval/judge/openai.js";
import { judgeRetrySchedule } from "../../src/eval/judge/retry.js";
import { type FakeOpenAI, type Script, startFakeOpenAI } from "./fake-openai.js";

const MODEL = "gpt-4o-test";
let server: FakeOpenAI;
beforeAll(async () => {
  server = await startFakeOpenAI();
});
afterAll(() => server.close());
beforeEach(() => server.reset());

const judge = (options: Partial<OpenAIJudgeOptions> = {}) =>
  new OpenAIJudge({
    model: MODEL,
    apiKey: "sk-test",
    baseURL: server.baseURL,
    baseDelayMs: 20,
    maxDelayMs: 2000,
    maxRetries: 2,
    timeoutMs: 2000,
    ...options,
  });

async function failure(script: Script, options: Partial<OpenAIJudgeOptions> = {}): Promise<JudgeError> {
  server.reset(script);
  const exit = await Effect.runPromiseExit(judge(options).score("Rate: 1"));
  if (Exit.isSuccess(exit)) throw new Error("expected a failure");
  const error = Cause.squash(exit.cause);
  expect(error).toBeInstanceOf(JudgeError);
  return error as JudgeError;
}

const gaps = (): number[] => server.requests.slice(1).map((r, i) => r.receivedAt - server.requests[i]!.receivedAt);

describe("JudgeError reasons", () => {
  it("429 without Retry-After: RateLimited, retryable, 1 + maxRetries attempts", async () => {
    const error = await failure(() => ({ status: 429 }));
    expect(error.reason).toEqual({ _tag: "RateLimited", retryAfterMs: null });
    expect(error.isRetryable).toBe(true);
    expect(error.attempts).toBe(3);
    expect(server.requests.length).toBe(3);
  });

  it("429 with retry-after-ms: the reason carries it and every retry waits it out", async () => {
    const error = await failure(() => ({ status: 429, headers: { "retry-after-ms": "250" } }), { maxRetries: 2 });
    expect(error.reason).toEqual({ _tag: "RateLimited", retryAfterMs: 250 });
    for (const gap of gaps()) expect(gap).toBeGreaterThanOrEqual(240);
  });

  it("500: HttpStatus 500, retryable; 400: HttpStatus 400, not retryable, one attempt", async () => {
    const e500 = await failure(() => ({ status: 500 }));
    expect(e500.reason).toMatchObject({ _tag: "HttpStatus", status: 500 });
    expect([e500.isRetryable, e500.attempts, e500.status]).toEqual([true, 3, 500]);
    const e400 = await failure(() => ({ status: 400 }));
    expect(e400.reason).toMatchObject({ _tag: "HttpStatus", status: 400 });
    expect([e400.isRetryable, e400.attempts]).toEqual([false, 1]);
    expect(server.requests.length).toBe(1);
  });

  it("a garbage body: MalformedReply, retried", async () => {
    const error = await failure(() => ({ malformed: "<html>bad gateway</html>" }));
    expect(error.reason._tag).toBe("MalformedReply");
    expect([error.isRetryable, error.attempts]).toEqual([true, 3]);
  });

  it("a reply slower than the timeout: Timeout", async () => {
    const error = await failure(() => ({ status: 200, body: {}, delayMs: 600 }), { timeoutMs: 150, maxRetries: 1 });
    expect(error.reason._tag).toBe("Timeout");
    expect([error.isRetryable, error.attempts]).toEqual([true, 2]);
  });

  it("a refused connection: Network", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const exit = await Effect.runPromiseExit(judge({ baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 1 }).score("x"));
    const error = Exit.isFailure(exit) ? (Cause.squash(exit.cause) as JudgeError) : null;
    expect(error?.reason._tag).toBe("Network");
    expect(error?.attempts).toBe(2);
  });

  it("recovers with catchTag on the JudgeError and branches on its reason", async () => {
    server.reset(() => ({ status: 429, headers: { "retry-after-ms": "1" } }));
    const out = await Effect.runPromise(
      judge({ maxRetries: 0 })
        .score("x")
        .pipe(
          Effect.map(() => "scored"),
          Effect.catchTag("JudgeError", (e) => Effect.succeed(e.reason._tag === "RateLimited" ? "slow down" : "other")),
        ),
    );
    expect(out).toBe("slow down");
  });
});

describe("judgeRetrySchedule", () => {
  const rateLimited = new JudgeError({ message: "429", reason: { _tag: "RateLimited", retryAfterMs: null }, status: 429, attempts: 1 });

  /** Measured gaps (ms) between the attempts of an effect that fails `failures` times, retried on the policy. */
  async function delays(
    policy: { maxRetries: number; baseDelayMs: number; maxDelayMs: number },
    failures: number,
    unit?: number,
  ): Promise<number[]> {
    const started: number[] = [];
    let n = 0;
    const program = Effect.suspend(() => {
      started.push(performance.now());
      return n++ < failures ? Effect.fail(rateLimited) : Effect.succeed(n);
    }).pipe(Effect.retry({ schedule: judgeRetrySchedule(policy), while: (e) => e.isRetryable }), Effect.exit);
    // A Random whose every draw is `unit` pins the jitter factor to 0.5 + unit / 2.
    const fixed: Random.Random = { nextDoubleUnsafe: () => unit!, nextIntUnsafe: () => 0 };
    await Effect.runPromise(unit === undefined ? program : program.pipe(Effect.provideService(Random.Random, fixed)));
    return started.slice(1).map((t, i) => t - started[i]!);
  }

  it("backs off exponentially within the jitter band [0.5, 1) x base x 2^n, capped, and stops after maxRetries", async () => {
    const d = await delays({ maxRetries: 4, baseDelayMs: 40, maxDelayMs: 200 }, 10);
    expect(d.length).toBe(4); // 5 attempts
    const bands = [40, 80, 160, 200].map((full) => [full * 0.5, full]);
    d.forEach((ms, i) => {
      expect(ms, `delay ${i}`).toBeGreaterThanOrEqual(bands[i]![0]! - 2);
      expect(ms, `delay ${i}`).toBeLessThan(bands[i]![1]! + 100);
    });
  });

  it("does not retry a non-retryable error", async () => {
    const fatal = new JudgeError({
      message: "401",
      reason: { _tag: "HttpStatus", status: 401, retryAfterMs: null },
      status: 401,
      attempts: 1,
    });
    let attempts = 0;
    const exit = await Effect.runPromiseExit(
      Effect.suspend(() => (attempts++, Effect.fail(fatal))).pipe(
        Effect.retry({ schedule: judgeRetrySchedule({ maxRetries: 5, baseDelayMs: 1, maxDelayMs: 1 }), while: (e) => e.isRetryable }),
      ),
    );
    expect(Exit.isFailure(exit)).toBe(true);
    expect(attempts).toBe(1);
  });

  it("draws its jitter from Effect's Random: a draw of 0 halves each delay, a draw near 1 keeps it whole", async () => {
    const policy = { maxRetries: 3, baseDelayMs: 200, maxDelayMs: 10_000 };
    const low = await delays(policy, 10, 0);
    const high = await delays(policy, 10, 0.998);
    [100, 200, 400].forEach((want, i) => {
      expect(low[i]!, `low ${i}`).toBeGreaterThanOrEqual(want - 2);
      expect(low[i]!, `low ${i}`).toBeLessThan(want + 80);
      expect(high[i]!, `high ${i}`).toBeGreaterThanOrEqual(2 * want - 2);
      expect(high[i]!, `high ${i}`).toBeLessThan(2 * want + 80);
    });
  });
});
