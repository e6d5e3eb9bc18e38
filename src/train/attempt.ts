/**
 * The boundary between the training recipe's synchronous code and its Effect program: `attempt` runs
 * a synchronous block (a set-up stage, one optimizer step) and puts a typed error it throws (anything
 * with a `_tag`: RunInputError, UnlabeledBatchError, NonFiniteStepError, a libtorch op error...) into
 * the error channel, where `Effect.catchTag` sees it; anything else stays a defect.
 */
import { Effect } from "effect";

/** A tagged error thrown by the code the recipe calls. */
export type TaggedFailure = Error & { readonly _tag: string };

const isTagged = (e: unknown): e is TaggedFailure => e instanceof Error && typeof (e as { _tag?: unknown })._tag === "string";

export const attempt = <A>(block: () => A): Effect.Effect<A, TaggedFailure> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(block());
    } catch (error) {
      return isTagged(error) ? Effect.fail(error) : Effect.die(error);
    }
  });
