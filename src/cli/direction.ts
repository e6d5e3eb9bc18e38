/** `emlab direction`: parses options, computes the mean-difference direction (src/analysis/directions.ts), writes it. */
import { meanDiffDirection, splitJudged } from "../analysis/directions.js";
import { ResultsFile } from "../eval/results.js";
import { saveSafetensors } from "../io/safetensors.js";
import { parseNumber, required } from "./args.js";
import { withModel } from "./analysis-options.js";
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

export function runDirection(argv: readonly string[]): number {
  const parsed = parseOrHelp(directionCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const rows = ResultsFile.read(required("--results", values.results)).rows;
  const out = required("--out", values.out);
  const { misaligned, aligned } = splitJudged(rows, { seed: parseNumber("--seed", values.seed, { integer: true }) ?? 0 });
  return withModel(values, (model, tokenizer) => {
    const result = meanDiffDirection(model, tokenizer, misaligned, aligned, {
      batchSize: parseNumber("--batch-size", values["batch-size"], { integer: true, min: 1 }),
      onBatch: progressReporter("activations"),
    });
    try {
      saveSafetensors(
        out,
        { direction: result.direction, misaligned_mean: result.misalignedMean, aligned_mean: result.alignedMean },
        {
          misaligned: String(result.counts.misaligned),
          aligned: String(result.counts.aligned),
          source: values.results!,
        },
      );
      process.stdout.write(`${JSON.stringify({ out, ...result.counts, layers: model.spec.layers.length })}\n`);
    } finally {
      result.direction.dispose();
      result.misalignedMean.dispose();
      result.alignedMean.dispose();
    }
    return 0;
  });
}
