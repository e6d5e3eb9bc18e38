/**
 * The named set-up stages of the training recipe and a test-only seam to fail one of them. Tests
 * provide `FailTrainingAt` (an Effect Context reference, so nothing global is mutated) to make the
 * stage throw as its real operation could (out of memory while loading the frozen copy, say), then
 * check that everything acquired before it was released. Not exported from the package.
 */
import { Context, Data, Effect } from "effect";

export type SetupStage = "model" | "tokenizer" | "method" | "reference" | "data" | "optimizer" | "first-step";

/** The stage at which the recipe fails on purpose (tests only); null: none. */
export const FailTrainingAt = Context.Reference<SetupStage | null>("emlab/train/FailTrainingAt", { defaultValue: () => null });

/** The failure injected at `stage`. */
export class InjectedStageFailure extends Data.TaggedError("InjectedStageFailure")<{
  readonly stage: SetupStage;
  readonly message: string;
}> {}

/** Fails with InjectedStageFailure when a test asked for a failure at `stage`; otherwise does nothing. */
export const enterStage = (stage: SetupStage): Effect.Effect<void, InjectedStageFailure> =>
  Effect.gen(function* () {
    if ((yield* FailTrainingAt) === stage)
      return yield* new InjectedStageFailure({ stage, message: `failure injected at set-up stage ${stage}` });
  });
