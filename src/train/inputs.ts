/** The typed error of a run whose inputs are missing or unusable (raised before anything is written). */
import { Data } from "effect";

export class RunInputError extends Data.TaggedError("RunInputError")<{
  readonly field: string;
  readonly file: string;
  readonly message: string;
}> {}
