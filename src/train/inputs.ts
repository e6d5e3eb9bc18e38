/** The typed errors of a run whose inputs or output directory are unusable (raised before anything is written). */
import { Data } from "effect";

export class RunInputError extends Data.TaggedError("RunInputError")<{
  readonly field: string;
  readonly file: string;
  readonly message: string;
}> {}

/**
 * The output directory refuses the run: it already holds one (`file` is its metrics log; use --resume or
 * a new output_dir), or --resume was asked with a config that differs from the one it ran with (`file`
 * is its config.resolved.json).
 */
export class RunDirectoryError extends Data.TaggedError("RunDirectoryError")<{
  readonly dir: string;
  readonly file: string;
  readonly message: string;
}> {}
