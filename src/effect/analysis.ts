/**
 * Analysis recipes as Effect programs over the ModelService. `directionProgram` reads judged result
 * rows, splits them into misaligned and aligned answers and computes the mean-difference direction;
 * its three tensors live until the enclosing Scope closes. The computation itself is
 * src/analysis/directions.ts (one synchronous step); this file only adds typed failures and lifetimes.
 */
import { Effect, type Scope } from "effect";
import { type DirectionResult, meanDiffDirection, type SplitCriteria, splitJudged } from "../analysis/directions.js";
import { ResultsFile } from "../eval/results.js";
import { type BoundaryError, boundary } from "./errors.js";
import { ModelService } from "./services.js";

export interface DirectionProgramOptions extends SplitCriteria {
  /** Judged results file (aligned and coherent columns), or one already read (e.g. checked before the model loads). */
  results: string | ResultsFile;
  batchSize?: number;
  maxLength?: number;
  /** Called after each batch of answers (progress). */
  onBatch?: (done: number, total: number) => void;
}

/** The mean-difference direction of a judged results file under the ModelService's model. */
export function directionProgram(
  options: DirectionProgramOptions,
): Effect.Effect<DirectionResult, BoundaryError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const given = options.results;
    const rows = typeof given === "string" ? (yield* boundary(() => ResultsFile.read(given))).rows : given.rows;
    const { misaligned, aligned } = splitJudged(rows, options);
    return yield* Effect.acquireRelease(
      boundary(() =>
        meanDiffDirection(model, tokenizer, misaligned, aligned, {
          batchSize: options.batchSize,
          maxLength: options.maxLength,
          onBatch: options.onBatch,
        }),
      ),
      (result) =>
        Effect.sync(() => {
          result.direction.dispose();
          result.misalignedMean.dispose();
          result.alignedMean.dispose();
        }),
    );
  });
}
