/** `emlab compare-norms`: parses options, runs the equal-norm comparison (src/analysis/experiments.ts), writes CSV. */
import { compareAtEqualNorm, type NormSolution } from "../analysis/experiments.js";
import { openNormSolution } from "../analysis/solution-handles.js";
import { parseNumber, required } from "./args.js";
import { analysisFlags, list, lossFlags, rescaleFlag, rescaleFrom, subsetFrom, withModel, writeCsv } from "./analysis-options.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

export const compareNormsCommand = defineCommand({
  name: "compare-norms",
  summary: "The study's equal-norm comparison: loss(narrow) - loss(general) with both rescaled to scales * the mean of their norms.",
  notes: [
    "A SOLUTION is a steering vector file (.pt / .safetensors) or an adapter SPEC (directory, comma list or run directory). CSV columns: norm,loss_narrow,loss_general,difference.",
  ],
  options: {
    model: modelOptions.model,
    dtype: modelOptions.dtype,
    device: modelOptions.device,
    narrow: { type: "string", value: "SOLUTION", required: true, description: "the narrow solution" },
    general: { type: "string", value: "SOLUTION", required: true, description: "the general solution" },
    layer: analysisFlags.layer,
    out: analysisFlags.out,
    ...lossFlags,
    ...rescaleFlag,
    scales: {
      type: "string",
      value: "S,S,...",
      default: "0.2,0.4,0.6,0.8,1,1.2,1.4,1.6,1.8,2",
      description: "multipliers of the mean norm",
    },
  },
});

export function runCompareNorms(argv: readonly string[]): number {
  const parsed = parseOrHelp(compareNormsCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const narrowSpec = required("--narrow", values.narrow);
  const generalSpec = required("--general", values.general);
  return withModel(values, (model, tokenizer) => {
    const layer = parseNumber("--layer", values.layer, { integer: true, min: 0 });
    const mode = rescaleFrom(values);
    const narrow = openNormSolution(narrowSpec, model, layer, mode);
    let general: (NormSolution & { close(): void }) | null = null;
    try {
      general = openNormSolution(generalSpec, model, layer, mode);
      const subset = subsetFrom(values, tokenizer);
      const scales = list(
        "--scales",
        values.scales,
        Array.from({ length: 10 }, (_, i) => (i + 1) / 5),
      );
      const result = compareAtEqualNorm(model, narrow, general, subset, scales, {
        padId: tokenizer.padTokenId ?? 0,
        onProgress: progressReporter("compare-norms"),
      });
      writeCsv(
        out,
        ["norm", "loss_narrow", "loss_general", "difference"],
        result.points.map((p) => [p.norm, p.narrow, p.general, p.difference]),
      );
      process.stdout.write(
        `${JSON.stringify({ out, reference: result.reference, narrow_norm: narrow.norm, general_norm: general.norm, points: result.points })}\n`,
      );
      return 0;
    } finally {
      narrow.close();
      general?.close();
    }
  });
}
