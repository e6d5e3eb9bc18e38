/**
 * `generate()` as an Effect that does not hold the event loop for a whole run: it yields (Effect.yieldNow,
 * a setImmediate macrotask) after every `yieldEvery` decode steps (default 1), so timers, HTTP replies,
 * progress output and signals are handled while a long run decodes, and an interruption lands between two
 * steps: the run's KV cache, mask and logits are freed by its finalizer. For the same arguments and seed
 * the ids are those of `generate()` (the same steps in the same order; libtorch's generator is global, so
 * nothing else may sample from it while a seeded run is suspended). Typed errors thrown while starting or
 * stepping (argument shapes, context length, memory budget, token ids, a generation_config.json that
 * cannot sample, libtorch op errors) are failures.
 */
import { Effect } from "effect";
import { ModelConfigError } from "../models/errors.js";
import type { LoadedModel } from "../models/load.js";
import type { Decoder } from "../nn/decoder.js";
import { ContextLengthError, TokenIdError } from "../nn/errors.js";
import { isTorchError, type TorchError } from "../tensor/errors.js";
import { MemoryBudgetError } from "./budget.js";
import { type GenerateOptions, type GenerateResult, startGeneration } from "./generate.js";
import type { GenerationRun } from "./generation-run.js";
import { IdShapeError, type IdRowsInput } from "./ids.js";

/** What a generation run can fail with (anything else, e.g. a RangeError for maxNewTokens < 1, is a defect). */
export type GenerationError = IdShapeError | ContextLengthError | MemoryBudgetError | TokenIdError | ModelConfigError | TorchError;

const isGenerationError = (error: unknown): error is GenerationError =>
  error instanceof IdShapeError ||
  error instanceof ContextLengthError ||
  error instanceof MemoryBudgetError ||
  error instanceof TokenIdError ||
  error instanceof ModelConfigError ||
  isTorchError(error);

/** Runs `block`; a GenerationError it throws becomes a failure, anything else a defect. */
const attemptGeneration = <A>(block: () => A): Effect.Effect<A, GenerationError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(block());
    } catch (error) {
      return isGenerationError(error) ? Effect.fail(error) : Effect.die(error);
    }
  });

export interface YieldOptions {
  /** Decode steps between two yields to the event loop (default 1: after every step). */
  yieldEvery?: number;
}

/** `generate()` yielding to the event loop between decode steps, interruptible there. */
export const generateEffect = (
  model: Decoder | LoadedModel,
  promptIds: IdRowsInput,
  promptMask: IdRowsInput | null,
  options: GenerateOptions & YieldOptions,
): Effect.Effect<GenerateResult, GenerationError> => {
  const every = options.yieldEvery ?? 1;
  if (!Number.isSafeInteger(every) || every < 1)
    return Effect.die(new RangeError(`generateEffect: yieldEvery must be a positive integer, got ${every}`));
  return Effect.acquireUseRelease(
    attemptGeneration(() => startGeneration(model, promptIds, promptMask, options)),
    (run: GenerationRun) =>
      Effect.gen(function* () {
        while (!run.done) {
          // The prompt pass just ran too: yield before the first step as before every later one.
          if (run.steps % every === 0) yield* Effect.yieldNow;
          yield* attemptGeneration(() => run.step());
        }
        return run.result();
      }),
    (run) => Effect.sync(() => run.dispose()),
  );
};
