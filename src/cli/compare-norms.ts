/** `emlab compare-norms`: parses options, runs compareNormsProgram (src/effect/analysis-programs.ts), writes CSV. */
import { Effect } from "effect";
import { compareNormsProgram } from "../effect/analysis-programs.js";
import { boundary } from "../effect/errors.js";
import { ModelService } from "../effect/services.js";
import { parseNumber, required } from "./args.js";
import {
  analysisFlags,
  list,
  lossFlags,
  rescaleFlag,
  rescaleFrom,
  runWithModel,
  subsetFrom,
  writeCsv,
  writeOutputs,
} from "./analysis-options.js";
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

export function runCompareNorms(argv: readonly string[]): Promise<number> | number {
  const parsed = parseOrHelp(compareNormsCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const options = {
    narrow: required("--narrow", values.narrow),
    general: required("--general", values.general),
    layer: parseNumber("--layer", values.layer, { integer: true, min: 0 }),
    rescale: rescaleFrom(values),
    scales: list(
      "--scales",
      values.scales,
      Array.from({ length: 10 }, (_, i) => (i + 1) / 5),
    ),
    onProgress: progressReporter("compare-norms"),
  };
  const program = Effect.gen(function* () {
    const { tokenizer } = yield* ModelService;
    const examples = yield* boundary(() => subsetFrom(values, tokenizer));
    const result = yield* compareNormsProgram({ ...options, examples });
    return yield* writeOutputs(() => {
      writeCsv(
        out,
        ["norm", "loss_narrow", "loss_general", "difference"],
        result.points.map((p) => [p.norm, p.narrow, p.general, p.difference]),
      );
      process.stdout.write(
        `${JSON.stringify({ out, reference: result.reference, narrow_norm: result.narrowNorm, general_norm: result.generalNorm, points: result.points })}\n`,
      );
    });
  });
  return runWithModel(values, program);
}
