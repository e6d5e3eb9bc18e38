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

/**
 * Token ids a forward pass cannot take: not an integer tensor (int64 / int32), not [batch, pos], or an id
 * outside 0..vocab-1 (`id` and its `position` [row, column] then name the first offending one).
 */
export class TokenIdError extends Data.TaggedError("TokenIdError")<{
  readonly message: string;
  readonly id?: number;
  readonly position?: readonly [number, number];
}> {}
