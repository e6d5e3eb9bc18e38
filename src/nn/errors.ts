/** Typed errors of running a decoder on inputs it cannot take. */
import { Data } from "effect";

/** More positions than the model was trained for (config max_position_embeddings). */
export class ContextLengthError extends Data.TaggedError("ContextLengthError")<{
  readonly message: string;
  readonly positions: number;
  readonly maxPositions: number;
}> {}

export function contextLengthError(what: string, positions: number, maxPositions: number): ContextLengthError {
  return new ContextLengthError({
    message: `${what} needs ${positions} positions but the model takes at most ${maxPositions} (max_position_embeddings)`,
    positions,
    maxPositions,
  });
}
