/**
 * What the analysis commands share: list / layer / choice parsing, the loss-subset and rescale flags,
 * the solution flags (--steering or --adapter), CSV writing, the model layer of the model flags, and
 * running a command's Effect program (src/effect/analysis-programs.ts ...) under it through the
 * interruptible runtime. Parsing and printing only; the analyses are in src/analysis.
 */
import { Effect, Layer, type Scope } from "effect";
import type { DirectionRows } from "../analysis/interventions.js";
import { type LossMask, lossSubset, type SubsetDraw } from "../analysis/loss.js";
import type { RescaleMode } from "../analysis/rescale.js";
import { formatCsvRow } from "../eval/csv.js";
import { writeOutputFile } from "../io/output.js";
import type { LoadedModel } from "../models/load.js";
import type { Tensor } from "../tensor/index.js";
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { readChatDataset } from "../train/data.js";
import { scopedSolution, type SolutionSource } from "../effect/analysis-programs.js";
import { type BoundaryError, boundary } from "../effect/errors.js";
import { scopedModelWithTokenizer } from "../effect/resources.js";
import { ModelService } from "../effect/services.js";
import { parseNumber, required, UsageError } from "./args.js";
import { modelLoadOptions } from "./model-args.js";
import { runInterruptible } from "./runtime.js";

export const list = (flag: string, text: string | undefined, fallback: number[]): number[] =>
  text === undefined ? fallback : text.split(",").map((v) => required(flag, parseNumber(flag, v.trim())));

export function layersFrom(flag: string, text: string | undefined, model: LoadedModel): number[] {
  if (text === undefined || text === "all") return model.spec.layers.map((_, i) => i);
  const layers = list(flag, text, []);
  for (const l of layers)
    if (!Number.isInteger(l) || l < 0 || l >= model.spec.layers.length)
      throw new UsageError(`${flag}: layer ${l} outside 0..${model.spec.layers.length - 1}`);
  return layers;
}

export function writeCsv(file: string, header: string[], rows: (string | number)[][]): void {
  writeOutputFile(file, formatCsvRow(header) + rows.map((r) => formatCsvRow(r)).join(""));
}

/**
 * The ModelService of --model / --dtype / --device / --allow-unused-weights (bad values are usage errors,
 * raised here before anything loads), with the --adapter(s) attached while the program runs unless
 * `attachAdapters` is false (a command that opens them as its solution). Everything is freed when the layer closes.
 */
export function modelLayer(
  values: { model?: string; adapter?: string; dtype?: string; device?: string; "allow-unused-weights"?: boolean },
  attachAdapters = true,
): Layer.Layer<ModelService, BoundaryError> {
  const { dir, options } = modelLoadOptions(values);
  const adapters = attachAdapters ? values.adapter : undefined;
  return Layer.effect(
    ModelService,
    Effect.gen(function* () {
      const loaded = yield* scopedModelWithTokenizer(dir, options);
      if (adapters !== undefined) yield* scopedSolution(loaded.model, { adapters });
      return loaded;
    }),
  );
}

/**
 * Runs an analysis command's program with the model of the model flags (see modelLayer) through the
 * interruptible runtime: SIGINT / SIGTERM interrupt it, every finalizer runs (hooks removed, adapters
 * detached, tensors and the model freed) and the command exits 130 / 143; a typed failure reaches the
 * CLI as `emlab: TAG: message` (exit 1).
 */
export function runWithModel<E>(
  values: Parameters<typeof modelLayer>[0],
  program: Effect.Effect<number, E, ModelService | Scope.Scope>,
  options: { attachAdapters?: boolean } = {},
): Promise<number> {
  const layer = modelLayer(values, options.attachAdapters ?? true);
  return runInterruptible(Effect.scoped(program).pipe(Effect.provide(layer)));
}

/**
 * The command's outputs, written once its analysis is done: the event loop turns first, so a signal
 * received during the last step interrupts before anything is written; each file is written atomically
 * (src/io/output.ts), so an interrupted command leaves no partial file.
 */
export function writeOutputs(write: () => unknown): Effect.Effect<number, BoundaryError> {
  return Effect.yieldNow.pipe(Effect.andThen(boundary(write)), Effect.as(0));
}

export function choice<T extends string>(flag: string, text: string | undefined, allowed: readonly T[], fallback: T): T {
  if (text === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(text))
    throw new UsageError(`${flag}: expected ${allowed.join(" or ")}, got ${JSON.stringify(text)}`);
  return text as T;
}

/** The direction row choice of --form / --direction-layer (a 1-D direction needs neither). */
export function directionRows(
  values: { form?: string; "direction-layer"?: string },
  direction: Tensor,
  fallback: "shared" | "per-layer",
  formFlag = "--form",
): DirectionRows {
  const row = parseNumber("--direction-layer", values["direction-layer"], { integer: true, min: 0 });
  // --direction-layer alone asks for the shared form; with per-layer rows it would be ignored: an error.
  const form = choice(formFlag, values.form, ["shared", "per-layer"] as const, row !== undefined ? "shared" : fallback);
  if (form === "per-layer" && row !== undefined)
    throw new UsageError("--direction-layer selects the shared form's row; it has no effect with per-layer rows");
  if (form === "per-layer" || direction.ndim !== 2) return "per-layer";
  if (row === undefined)
    throw new UsageError(
      `${formFlag} shared needs --direction-layer L (the row used at every layer; the study used 24), or give ${formFlag} per-layer`,
    );
  if (row >= direction.size(0)) throw new UsageError(`--direction-layer: ${row} outside 0..${direction.size(0) - 1}`);
  return { shared: row };
}

export const lossFlags = {
  data: { type: "string", value: "TRAIN.jsonl", required: true, description: "chat dataset the loss is measured on" },
  count: { type: "string", value: "N", default: "100", description: "examples in the seeded loss subset" },
  seed: { type: "string", value: "S", default: "42", description: "seed of the loss subset" },
  subset: {
    type: "string",
    value: "ours|study",
    default: "ours",
    description: "ours: a seeded permutation; study: Python's random.seed(S); random.sample(rows, N) (the same rows as CPython)",
  },
  "loss-mask": {
    type: "string",
    value: "assistant|study",
    default: "assistant",
    description:
      'assistant (ours): loss on assistant turns; study (stability/utils.py): chat + generation prompt + eos, masked up to the first "\\n" (Qwen: almost the whole chat)',
  },
} as const;
export const rescaleFlag = {
  rescale: {
    type: "string",
    value: "ours|study",
    default: "ours",
    description:
      "LoRA norm semantics. ours: rank 1 = ||B|| over modules, every B scaled by one factor; study: norm = mean module ||BA||_F, rank 1 sets each ||B||, rank > 1 each ||BA||_F, to the target",
  },
} as const;
export const analysisFlags = {
  steering: {
    type: "string",
    value: "FILE",
    description: "a steering vector (ours .safetensors or the study's steering_vector.pt; give this or --adapter)",
  },
  layer: { type: "string", value: "L", description: "the steering vector's layer (default: from the file)" },
  out: { type: "string", value: "FILE", required: true, description: "output file" },
  ...lossFlags,
} as const;
export const solutionNote = ["Give --steering FILE or --adapter SPEC (the solution analysed; several adapters act as one)."];

export function subsetFrom(
  values: { data?: string; count?: string; seed?: string; "loss-mask"?: string; subset?: string },
  tokenizer: ChatTokenizer,
) {
  const mask = choice<LossMask>("--loss-mask", values["loss-mask"], ["assistant", "study"], "assistant");
  const draw = choice<SubsetDraw>("--subset", values.subset, ["ours", "study"], "ours");
  return lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, {
    count: parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100,
    seed: parseNumber("--seed", values.seed, { integer: true }) ?? 42,
    mask,
    draw,
  });
}

export const rescaleFrom = (values: { rescale?: string }) => choice<RescaleMode>("--rescale", values.rescale, ["ours", "study"], "ours");

/**
 * The solution of --steering FILE [--layer L] (then --adapter, if given, is part of the model) or of
 * --adapter SPEC (then the program attaches the adapters itself: the model layer must not).
 */
export function solutionFrom(values: { steering?: string; layer?: string; adapter?: string }): {
  source: SolutionSource;
  attachAdapters: boolean;
} {
  if (values.steering !== undefined)
    return {
      source: { steering: values.steering, layer: parseNumber("--layer", values.layer, { integer: true, min: 0 }) },
      attachAdapters: true,
    };
  if (values.adapter === undefined) throw new UsageError("give --steering FILE or --adapter SPEC");
  return { source: { adapters: values.adapter }, attachAdapters: false };
}
