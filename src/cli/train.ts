/**
 * `emlab train CONFIG.(json|yaml) [--resume]`: runs the training recipe and writes the run directory
 * (config.resolved.json, metrics.jsonl, checkpoints/, the final adapter / vector / model). Paths in the
 * config resolve relative to the config file.
 */
import { Effect } from "effect";
import { trainingProgram } from "../recipes/train.js";
import { readRunConfig } from "../train/config.js";
import { parseOrHelp } from "./generate.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";
import { runInterruptible } from "./runtime.js";

export const trainCommand = defineCommand({
  name: "train",
  summary: "LoRA / full SFT / steering-vector training with an optional KL penalty; exact resume.",
  positionals: [{ name: "CONFIG", description: "run config (JSON or YAML); its paths are relative to the file" }],
  options: { resume: { type: "boolean", description: "continue from the newest checkpoint (a finished run is left as it is)" } },
});

/** Runs the recipe as the process's main fiber: Ctrl-C / SIGTERM checkpoint the run and exit 130 / 143. */
export async function runTrain(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(trainCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const config = readRunConfig(positionals[0]!);
  const progress = progressReporter("train");
  const tty = process.stderr.isTTY;
  const program = trainingProgram(config, {
    resume: values.resume,
    log: (line) => process.stderr.write(`${line}\n`),
    onStep: (m, total) => {
      if (tty) progress(m.step, total);
      else process.stderr.write(`step ${m.step}/${total} loss ${m.loss.toFixed(4)} ce ${m.ce.toFixed(4)}${m.kl === null ? "" : ` kl ${m.kl.toExponential(3)}`} lr ${m.lr.toExponential(2)} grad_norm ${m.grad_norm.toFixed(3)} ${m.tokens_per_s.toFixed(0)} tok/s\n`);
    },
  });
  return runInterruptible(
    Effect.map(program, (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return 0;
    }),
  );
}
