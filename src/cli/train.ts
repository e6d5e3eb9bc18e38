/**
 * `emlab train CONFIG.(json|yaml) [--resume]`: runs the training recipe and writes the run directory
 * (config.resolved.json, metrics.jsonl, checkpoints/, the final adapter / vector / model).
 */
import { parseArgs } from "node:util";
import { runTraining } from "../recipes/train.js";
import { readRunConfig } from "../train/config.js";
import { UsageError } from "./args.js";
import { progressReporter } from "./progress.js";

export function runTrain(argv: readonly string[]): number {
  const { values, positionals } = parseArgs({ args: [...argv], options: { resume: { type: "boolean", default: false } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UsageError("train needs exactly one config file");
  const config = readRunConfig(positionals[0]!);
  const progress = progressReporter("train");
  const tty = process.stderr.isTTY;
  const result = runTraining(config, {
    resume: values.resume,
    log: (line) => process.stderr.write(`${line}\n`),
    onStep: (m, total) => {
      if (tty) progress(m.step, total);
      else process.stderr.write(`step ${m.step}/${total} loss ${m.loss.toFixed(4)} ce ${m.ce.toFixed(4)}${m.kl === null ? "" : ` kl ${m.kl.toExponential(3)}`} lr ${m.lr.toExponential(2)} grad_norm ${m.grad_norm.toFixed(3)} ${m.tokens_per_s.toFixed(0)} tok/s\n`);
    },
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}
