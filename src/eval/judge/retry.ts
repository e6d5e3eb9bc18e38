/**
 * The retry policy of API judges as an Effect `Schedule`: exponential backoff from `baseDelayMs`
 * (doubling), each delay scaled by a random factor in [0.5, 1) from Effect's `Random` service (seed
 * it for reproducible delays), a server's Retry-After used instead when it sent one, every delay
 * capped at `maxDelayMs`, at most `maxRetries` retries. Only retryable failures are retried (the
 * caller passes `while: isRetryable` to Effect.retry).
 */
import { Duration, Effect, Random, Schedule } from "effect";
import type { JudgeError } from "./judge.js";

export interface RetryPolicy {
  /** Retries after the first attempt. */
  maxRetries: number;
  /** First backoff delay, doubled each retry. */
  baseDelayMs: number;
  /** Cap on every delay, Retry-After included. */
  maxDelayMs: number;
}

/** Retry-After of a failure, when its reason carries one. */
const retryAfterOf = (error: JudgeError): number | null =>
  error.reason._tag === "RateLimited" || error.reason._tag === "HttpStatus" ? error.reason.retryAfterMs : null;

/** The delay schedule for `Effect.retry(..., { schedule, while: (e) => e.isRetryable })`. */
export function judgeRetrySchedule(policy: RetryPolicy): Schedule.Schedule<Duration.Duration, JudgeError> {
  return Schedule.exponential(Duration.millis(policy.baseDelayMs), 2).pipe(
    Schedule.setInputType<JudgeError>(),
    Schedule.modifyDelay(({ input, output }) => {
      const serverAsked = retryAfterOf(input);
      if (serverAsked !== null) return Effect.succeed(Duration.millis(Math.min(policy.maxDelayMs, serverAsked)));
      return Random.next.pipe(Effect.map((u) => Duration.millis(Math.min(policy.maxDelayMs, Duration.toMillis(output)) * (0.5 + u / 2))));
    }),
    Schedule.upTo({ times: policy.maxRetries }),
  );
}
