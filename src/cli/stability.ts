/** `emlab stability`: parses options, runs the perturbation analysis (src/analysis/experiments.ts), writes CSV. */
import { stability } from "../analysis/experiments.js";
import { datasetLoss } from "../train/dataset-loss.js";
import { required } from "./args.js";
import { analysisFlags, list, solutionFrom, solutionNote, subsetFrom, withModel, writeCsv } from "./analysis-options.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

export const stabilityCommand = defineCommand({
  name: "stability",
  summary:
    "Orthogonal norm-preserving perturbations sqrt(1 - eps^2) x + eps y: (L_eps - L_0) / (L_base - L_0), mean and population (numpy, the study's) and sample std over seeds.",
  notes: solutionNote,
  options: {
    ...modelOptions,
    ...analysisFlags,
    eps: {
      type: "string",
      value: "E,E,...",
      default: "0.01,0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
      description: "perturbation sizes",
    },
    seeds: {
      type: "string",
      value: "S,S,...",
      default: "42,43,44,45,46,47,48,49,50,51",
      description: "perturbation seeds (exp_set.sh's 10)",
    },
  },
});

export function runStability(argv: readonly string[]): number {
  const parsed = parseOrHelp(stabilityCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  return withModel(values, (model, tokenizer) => {
    const s = solutionFrom(values, model);
    try {
      const subset = subsetFrom(values, tokenizer);
      const pad = tokenizer.padTokenId ?? 0;
      const baseLoss = s.off(() => datasetLoss(model, subset, { padId: pad }));
      const result = stability(model, s.tensors, subset, {
        eps: list("--eps", values.eps, [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        seeds: list("--seeds", values.seeds, [42, 43, 44, 45, 46, 47, 48, 49, 50, 51]),
        baseLoss,
        padId: pad,
        onProgress: progressReporter("stability"),
      });
      writeCsv(
        out,
        ["eps", "mean_percent", "std_population_percent", "std_sample_percent", "losses"],
        result.points.map((p) => [p.eps, p.mean, p.stdPopulation, p.std, p.losses.join(" ")]),
      );
      process.stdout.write(`${JSON.stringify({ out, l0: result.l0, lBase: result.lBase })}\n`);
      return 0;
    } finally {
      s.close();
    }
  });
}
