/** `emlab stability`: parses options, runs stabilityProgram (src/effect/analysis-programs.ts), writes CSV. */
import { Effect } from "effect";
import { stabilityProgram } from "../effect/analysis-programs.js";
import { boundary } from "../effect/errors.js";
import { ModelService } from "../effect/services.js";
import { required } from "./args.js";
import { analysisFlags, list, runWithModel, solutionFrom, solutionNote, subsetFrom, writeCsv, writeOutputs } from "./analysis-options.js";
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

export function runStability(argv: readonly string[]): Promise<number> | number {
  const parsed = parseOrHelp(stabilityCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const { source, attachAdapters } = solutionFrom(values);
  const eps = list("--eps", values.eps, [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
  const seeds = list("--seeds", values.seeds, [42, 43, 44, 45, 46, 47, 48, 49, 50, 51]);
  const program = Effect.gen(function* () {
    const { tokenizer } = yield* ModelService;
    const examples = yield* boundary(() => subsetFrom(values, tokenizer));
    const result = yield* stabilityProgram({ solution: source, examples, eps, seeds, onProgress: progressReporter("stability") });
    return yield* writeOutputs(() => {
      writeCsv(
        out,
        ["eps", "mean_percent", "std_population_percent", "std_sample_percent", "losses"],
        result.points.map((p) => [p.eps, p.mean, p.stdPopulation, p.std, p.losses.join(" ")]),
      );
      process.stdout.write(`${JSON.stringify({ out, l0: result.l0, lBase: result.lBase })}\n`);
    });
  });
  return runWithModel(values, program, { attachAdapters });
}
