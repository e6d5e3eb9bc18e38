/**
 * What `emlab steer` and `emlab ablate` share: their options and the run (parse; then, as an Effect
 * program under the model layer, load the direction or its random control (scoped), run
 * interventionProgram (src/effect/analysis-programs.ts), print). The commands are in steer.ts / ablate.ts.
 */
import { Effect } from "effect";
import { interventionProgram, scopedDirectionFile, scopedRandomControl } from "../effect/analysis-programs.js";
import { ModelService } from "../effect/services.js";
import type { LoadedModel } from "../models/load.js";
import type { Tensor } from "../tensor/index.js";
import { parseNumber, required } from "./args.js";
import type { ablateCommand } from "./ablate.js";
import { choice, directionRows, layersFrom, runWithModel, writeOutputs } from "./analysis-options.js";
import { parseOrHelp, samplingFrom, samplingOptions, stopIds } from "./generate.js";
import { modelOptions } from "./model-args.js";
import type { steerCommand } from "./steer.js";

export const interventionOptions = {
  ...modelOptions,
  ...samplingOptions("600"),
  direction: {
    type: "string",
    value: "FILE",
    required: true,
    description:
      "direction file from emlab direction ([layers, d_model]), a steering vector (.safetensors) or the study's steering_vector.pt",
  },
  layers: {
    type: "string",
    value: "L,L|all",
    description: "layers whose output is changed (default: all; ablate with --direction-layer: that layer)",
  },
  prompt: { type: "string", value: "TEXT", description: "the question (required unless --lora-b-out)" },
  "prompt-format": {
    type: "string",
    value: "chat|study",
    default: "chat",
    description: 'chat (ours): the chat template with a generation prompt; study (gen_with_steering): the raw text question + "\\n"',
  },
  samples: { type: "string", value: "K", default: "1", description: "samples per prompt" },
  form: {
    type: "string",
    value: "shared|per-layer",
    description:
      "shared (the study's l24_data_diff_vectors: the --direction-layer row at every chosen layer; ablate's default) or per-layer (ours: each layer's own row; steer's default)",
  },
  "direction-layer": {
    type: "string",
    value: "L",
    description: "the row used by the shared form (the study: 24); given alone it selects --form shared",
  },
  "random-control": { type: "string", value: "SEED", description: "replace the direction by a seeded random control of kind --control" },
  control: {
    type: "string",
    value: "same-norm|study",
    default: "same-norm",
    description: "same-norm (ours): Gaussian with the direction's norm; study: randn_like(d) * ||d|| (norm about sqrt(d_model) * ||d||)",
  },
  json: { type: "boolean", description: "print texts, output ids, layers, rows and seed as JSON" },
} as const;
/** Parsed steer / ablate option values. */
export type InterventionValues = Record<string, string | boolean | undefined>;

/**
 * Parses steer / ablate options (`spec`), then generates with the intervention (interventionProgram)
 * and prints. `loraB` handles ablate's --lora-b-out instead (with the model's --adapter(s) attached).
 */
export function runIntervention(
  kind: "steer" | "ablate",
  spec: typeof steerCommand | typeof ablateCommand,
  argv: readonly string[],
  loraB?: (values: InterventionValues, model: LoadedModel, direction: Tensor) => number,
): Promise<number> | number {
  const parsed = parseOrHelp<typeof steerCommand.options & typeof ablateCommand.options>(spec as never, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const directionFile = required("--direction", values.direction);
  const seed = parseNumber("--random-control", values["random-control"], { integer: true, min: 0 });
  const controlKind = choice("--control", values.control, ["same-norm", "study"] as const, "same-norm");
  const scale = parseNumber("--scale", values.scale) ?? 8;
  const format = choice("--prompt-format", values["prompt-format"], ["chat", "study"] as const, "chat");
  const samples = parseNumber("--samples", values.samples, { integer: true, min: 1 }) ?? 1;
  // ablate's default layers: the direction layer (the study's sweep ablates at layer 24), else all.
  const directionLayer = parseNumber("--direction-layer", values["direction-layer"], { integer: true, min: 0 });
  const weightSpace = loraB !== undefined && values["lora-b-out"] !== undefined;
  const question = weightSpace ? "" : required("--prompt", values.prompt);
  const program = Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const loaded = yield* scopedDirectionFile(directionFile, model);
    const direction = seed === undefined ? loaded : yield* scopedRandomControl(loaded, { seed, kind: controlKind });
    if (weightSpace && loraB !== undefined) return yield* writeOutputs(() => loraB(values, model, direction));
    const rows = directionRows(values, direction, kind === "ablate" ? "shared" : "per-layer");
    const layers =
      values.layers === undefined && kind === "ablate" && directionLayer !== undefined
        ? layersFrom("--direction-layer", String(directionLayer), model)
        : layersFrom("--layers", values.layers, model);
    const sampling = samplingFrom(values, model);
    const { texts, outputIds } = yield* interventionProgram({
      kind,
      direction,
      layers,
      rows,
      scale,
      question,
      format,
      samples,
      eosTokenIds: stopIds(model, tokenizer),
      sampling,
    });
    return yield* writeOutputs(() =>
      process.stdout.write(
        values.json
          ? `${JSON.stringify({ texts, output_ids: outputIds, layers, rows, seed: sampling.seed })}\n`
          : `${texts.join("\n---\n")}\n`,
      ),
    );
  });
  return runWithModel(values, program);
}
