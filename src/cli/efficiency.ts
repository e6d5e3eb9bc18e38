/** `emlab efficiency`: parses options, runs the efficiency curve (src/analysis/experiments.ts), writes CSV. */
import { adapterEfficiency, steeringEfficiency } from "../analysis/experiments.js";
import { required } from "./args.js";
import {
  analysisFlags,
  list,
  rescaleFlag,
  rescaleFrom,
  solutionFrom,
  solutionNote,
  subsetFrom,
  withModel,
  writeCsv,
} from "./analysis-options.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";

export const efficiencyCommand = defineCommand({
  name: "efficiency",
  summary: "Loss on a seeded subset against the solution's rescaled norm (alpha kept for vectors).",
  notes: solutionNote,
  options: {
    ...modelOptions,
    ...analysisFlags,
    ...rescaleFlag,
    scales: {
      type: "string",
      value: "S,S,...",
      description: "norm multipliers (default: 0..2 by 0.25 for a vector, 0..2 by 0.1 for an adapter)",
    },
  },
});

export function runEfficiency(argv: readonly string[]): number {
  const parsed = parseOrHelp(efficiencyCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  return withModel(values, (model, tokenizer) => {
    const s = solutionFrom(values, model);
    try {
      const subset = subsetFrom(values, tokenizer);
      const scales = list(
        "--scales",
        values.scales,
        s.kind === "steering" ? [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2] : Array.from({ length: 21 }, (_, i) => i / 10),
      );
      const pad = tokenizer.padTokenId ?? 0;
      const points = s.steering
        ? steeringEfficiency(model, s.steering, subset, scales, pad)
        : adapterEfficiency(model, s.adapters, subset, scales, pad, rescaleFrom(values));
      writeCsv(
        out,
        ["scale", "norm", "loss"],
        points.map((p) => [p.scale, p.norm, p.loss]),
      );
      process.stdout.write(`${JSON.stringify({ out, points })}\n`);
      return 0;
    } finally {
      s.close();
    }
  });
}
