/**
 * Running an Effect program from Promise code: the value, or a rejection with the typed failure
 * itself (its `_tag` says which; not wrapped in a FiberFailure), defects rethrown as they were thrown.
 */
import { Cause, Effect, Exit } from "effect";

/** Runs `program` and settles with its value, or rejects with its first failure (or defect). */
export async function runPromise<A, E>(program: Effect.Effect<A, E>): Promise<A> {
  const exit = await Effect.runPromiseExit(program);
  if (Exit.isSuccess(exit)) return exit.value;
  throw Cause.squash(exit.cause);
}
