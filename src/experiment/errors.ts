/**
 * The typed refusal of the experiment runner: an input of a stage (a prompts or documents file, a
 * solution, a judge's prompts, an endpoint's key variable, the manifest, a --only / --from name) that
 * cannot work. It names the file and the field (the experiment file's path to the setting, or the
 * flag) so the user knows what to fix; the CLI prints `emlab: ExperimentInputError: message`.
 */
import { Data } from "effect";

export class ExperimentInputError extends Data.TaggedError("ExperimentInputError")<{
  readonly message: string;
  /** The file at fault (the experiment file itself for a setting or flag). */
  readonly file: string;
  /** The setting: `stages[3].prompts`, `endpoint.api_key_env`, `--only`, `manifest.json`... */
  readonly field: string;
}> {}
