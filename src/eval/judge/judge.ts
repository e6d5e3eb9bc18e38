/**
 * The judge contract shared by API, local and function judges, and its failure type: a JudgeError
 * whose `reason` says what went wrong (rate limited, timeout, HTTP status, malformed reply, network,
 * invalid result, local model failure) and whether another attempt may help (`isRetryable`).
 */
import { Data, type Effect } from "effect";
import type { JudgeScore } from "./score.js";

/** Why a judge call failed. */
export type JudgeFailureReason =
  /** HTTP 429; `retryAfterMs` from Retry-After / retry-after-ms when the server sent one. */
  | { readonly _tag: "RateLimited"; readonly retryAfterMs: number | null }
  /** No reply within the request timeout. */
  | { readonly _tag: "Timeout" }
  /** Any other non-2xx status (408, 409 and 5xx are retryable, other 4xx are not). */
  | { readonly _tag: "HttpStatus"; readonly status: number; readonly retryAfterMs: number | null }
  /** A 2xx reply that is not a chat completion with first-token logprobs (e.g. a proxy's HTML page). */
  | { readonly _tag: "MalformedReply" }
  /** The connection failed (refused, reset, DNS). */
  | { readonly _tag: "Network" }
  /** A well-formed reply whose alternatives give no valid score (checked before use or caching). */
  | { readonly _tag: "InvalidResult" }
  /** A local (emlab-loaded) judge model failed. */
  | { readonly _tag: "LocalModel" }
  /** A TypeScript judge function threw or returned something that is not a score. */
  | { readonly _tag: "Function" };

/** Whether another attempt could succeed after this reason. */
export function isRetryableReason(reason: JudgeFailureReason): boolean {
  switch (reason._tag) {
    case "RateLimited":
    case "Timeout":
    case "MalformedReply":
    case "Network":
      return true;
    case "HttpStatus":
      return reason.status === 408 || reason.status === 409 || reason.status >= 500;
    default:
      return false;
  }
}

/** A judge call that failed for good (after retries, or a non-retryable answer). */
export class JudgeError extends Data.TaggedError("JudgeError")<{
  readonly message: string;
  readonly reason: JudgeFailureReason;
  /** HTTP status when there was one. */
  readonly status: number | null;
  /** Attempts made, the failing one included. */
  readonly attempts: number;
}> {
  get isRetryable(): boolean {
    return isRetryableReason(this.reason);
  }
}

export interface Judge {
  /** Identifies the judge in caches and reports (e.g. the API model name). */
  readonly model: string;
  /** Scores one filled judge prompt. */
  score(prompt: string): Effect.Effect<JudgeScore, JudgeError>;
}
