/** `emlab direction`: parses options, runs directionProgram (src/effect/analysis.ts), writes the direction. */
import { Effect } from "effect";
import { directionProgram } from "../effect/analysis.js";
import { ResultsFile } from "../eval/results.js";
import { saveSafetensors } from "../io/safetensors.js";
import { parseNumber, required } from "./args.js";
import { runWithModel, writeOutputs } from "./analysis-options.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

export const directionCommand = defineCommand({
  name: "direction",
  summary: "Mean-difference misalignment direction per layer (misaligned minus aligned answers' activations).",
  options: {
    ...modelOptions,
    results: { type: "string", value: "JUDGED.csv", required: true, description: "judged results (aligned and coherent columns)" },
    out: { type: "string", value: "FILE.safetensors", required: true, description: "output: direction [layers, d_model] and both means" },
    seed: { type: "string", value: "S", default: "0", description: "seed of the aligned subsample" },
    "batch-size": { type: "string", value: "N", default: "8", description: "answers per forward pass" },
  },
});

export function runDirection(argv: readonly string[]): Promise<number> | number {
  const parsed = parseOrHelp(directionCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const source = required("--results", values.results);
  // Read (and checked) before the model loads: a malformed results file fails fast, naming its line.
  const results = ResultsFile.read(source);
  const out = required("--out", values.out);
  const program = Effect.gen(function* () {
    const result = yield* directionProgram({
      results,
      seed: parseNumber("--seed", values.seed, { integer: true }) ?? 0,
      batchSize: parseNumber("--batch-size", values["batch-size"], { integer: true, min: 1 }),
      onBatch: progressReporter("activations"),
    });
    return yield* writeOutputs(() => {
      saveSafetensors(
        out,
        { direction: result.direction, misaligned_mean: result.misalignedMean, aligned_mean: result.alignedMean },
        { misaligned: String(result.counts.misaligned), aligned: String(result.counts.aligned), source },
      );
      process.stdout.write(`${JSON.stringify({ out, ...result.counts, layers: result.direction.size(0) })}\n`);
    });
  });
  return runWithModel(values, program);
}
