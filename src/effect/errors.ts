/**
 * Boundary operations in the Effect error channel: `boundary(f)` runs a synchronous load or file
 * operation and turns the typed errors the components throw (model config/weights, safetensors,
 * tokenizer, adapter, dataset, run config, question set, direction files, training guards, generation
 * limits, libtorch), Node's file-system errors and components' argument checks (RangeError) into
 * failures; anything else (a bug) stays a defect. It does not retry or log.
 */
import { Data, Effect } from "effect";
import { DocumentsError } from "../analysis/documents.js";
import { MemoryBudgetError } from "../generate/budget.js";
import { IdShapeError } from "../generate/ids.js";
import { TorchFileError } from "../io/torch-file.js";
import { ContextLengthError, TokenIdError } from "../nn/errors.js";
import { NonFiniteStepError, UnlabeledBatchError } from "../train/guards.js";
import { InitFromError } from "../train/init-from.js";
import { RunDirectoryError, RunInputError } from "../train/inputs.js";
import { MetricsLogError } from "../train/metrics-log.js";
import { DirectionError } from "../train/steering-file.js";
import { AdapterError } from "../adapters/peft.js";
import { LoraConfigError } from "../adapters/lora.js";
import { QuestionSetError } from "../eval/questions.js";
import { ResultsFileError } from "../eval/results.js";
import { OutputDirectoryError } from "../io/files.js";
import { OutputPathError } from "../io/output.js";
import { SafetensorsError } from "../io/safetensors.js";
import { ModelConfigError, ModelWeightsError, UnsupportedArchitectureError } from "../models/errors.js";
import { isTorchError, type TorchError } from "../tensor/errors.js";
import { TokenizerError } from "../tokenizer/tokenizer.js";
import { RunConfigError } from "../train/config.js";
import { DatasetError } from "../train/data.js";

/** A file or directory could not be read or written (Node's error code kept, e.g. ENOENT, EACCES). */
export class FileSystemError extends Data.TaggedError("FileSystemError")<{
  readonly message: string;
  readonly path: string;
  readonly code: string;
}> {}

/** A component refused its arguments (a layer, row or size out of range, an unknown hook point). */
export class InvalidSetupError extends Data.TaggedError("InvalidSetupError")<{ readonly message: string }> {}

/** Every typed failure a boundary operation can end in. */
export type BoundaryError =
  | ModelConfigError
  | UnsupportedArchitectureError
  | ModelWeightsError
  | SafetensorsError
  | TokenizerError
  | AdapterError
  | LoraConfigError
  | DatasetError
  | RunConfigError
  | QuestionSetError
  | ResultsFileError
  | OutputDirectoryError
  | OutputPathError
  | ContextLengthError
  | TokenIdError
  | IdShapeError
  | MemoryBudgetError
  | TorchFileError
  | DirectionError
  | DocumentsError
  | RunInputError
  | RunDirectoryError
  | InitFromError
  | MetricsLogError
  | UnlabeledBatchError
  | NonFiniteStepError
  | FileSystemError
  | InvalidSetupError
  | TorchError;

const TYPED = [
  ModelConfigError,
  UnsupportedArchitectureError,
  ModelWeightsError,
  SafetensorsError,
  TokenizerError,
  AdapterError,
  LoraConfigError,
  DatasetError,
  RunConfigError,
  QuestionSetError,
  ResultsFileError,
  OutputDirectoryError,
  OutputPathError,
  ContextLengthError,
  TokenIdError,
  IdShapeError,
  MemoryBudgetError,
  TorchFileError,
  DirectionError,
  DocumentsError,
  RunInputError,
  RunDirectoryError,
  InitFromError,
  MetricsLogError,
  UnlabeledBatchError,
  NonFiniteStepError,
] as const;

/** The typed failure for `error`, or null when it is not one (then it is a defect). */
export function asBoundaryError(error: unknown): BoundaryError | null {
  if (isTorchError(error)) return error;
  if (TYPED.some((type) => error instanceof type)) return error as BoundaryError;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (error instanceof Error && typeof code === "string" && /^E[A-Z]+$/.test(code)) {
    const path = (error as NodeJS.ErrnoException).path ?? "";
    return new FileSystemError({ message: error.message, path, code });
  }
  // Components check their arguments with RangeError (layer outside 0..n-1, r < 1 ...).
  if (error instanceof RangeError) return new InvalidSetupError({ message: error.message });
  return null;
}

/** Runs a synchronous boundary operation: typed errors become failures, anything else a defect. */
export function boundary<A>(operation: () => A): Effect.Effect<A, BoundaryError> {
  return Effect.suspend(() => {
    try {
      return Effect.succeed(operation());
    } catch (error) {
      const typed = asBoundaryError(error);
      return typed === null ? Effect.die(error) : Effect.fail(typed);
    }
  });
}
