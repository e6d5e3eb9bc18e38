/** `emlab efficiency`: parses options, runs efficiencyProgram (src/effect/analysis-programs.ts), writes CSV. */
import { Effect } from "effect";
import { efficiencyProgram } from "../effect/analysis-programs.js";
import { boundary } from "../effect/errors.js";
import { ModelService } from "../effect/services.js";
import { required } from "./args.js";
import {
  analysisFlags,
  list,
  rescaleFlag,
  rescaleFrom,
  runWithModel,
  solutionFrom,
  solutionNote,
  subsetFrom,
  writeCsv,
  writeOutputs,
} from "./analysis-options.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

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

export function runEfficiency(argv: readonly string[]): Promise<number> | number {
  const parsed = parseOrHelp(efficiencyCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const { source, attachAdapters } = solutionFrom(values);
  const scales = list(
    "--scales",
    values.scales,
    "steering" in source ? [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2] : Array.from({ length: 21 }, (_, i) => i / 10),
  );
  const rescale = rescaleFrom(values);
  const program = Effect.gen(function* () {
    const { tokenizer } = yield* ModelService;
    const examples = yield* boundary(() => subsetFrom(values, tokenizer));
    const points = yield* efficiencyProgram({ solution: source, examples, scales, rescale, onProgress: progressReporter("efficiency") });
    return yield* writeOutputs(() => {
      writeCsv(
        out,
        ["scale", "norm", "loss"],
        points.map((p) => [p.scale, p.norm, p.loss]),
      );
      process.stdout.write(`${JSON.stringify({ out, points })}\n`);
    });
  });
  return runWithModel(values, program, { attachAdapters });
}
