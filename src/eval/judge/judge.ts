/** The judge contract shared by API and local judges, and its failure type. */
import { Data, type Effect } from "effect";
import type { JudgeScore } from "./score.js";

/** A judge call that failed for good (after retries, or a non-retryable answer). */
export class JudgeError extends Data.TaggedError("JudgeError")<{
  readonly message: string;
  /** HTTP status when there was one. */
  readonly status: number | null;
  readonly attempts: number;
}> {}

export interface Judge {
  /** Identifies the judge in caches and reports (e.g. the API model name). */
  readonly model: string;
  /** Scores one filled judge prompt. */
  score(prompt: string): Effect.Effect<JudgeScore, JudgeError>;
}
