/**
 * The efficiency, equal-norm comparison, stability, significance, checkpoint loss-gradient and steer /
 * ablate generation analyses as Effect programs over the ModelService, in the pattern of
 * `directionProgram`: the steering vector, adapters or direction an analysis works on are opened by a
 * scoped constructor (attached while the Scope is open; unhooked / detached and freed when it closes),
 * boundary failures (missing or malformed files, a layer the model lacks) arrive typed, and the
 * computation is the synchronous functions of src/analysis, unchanged: one `step` per scale of the
 * efficiency and equal-norm curves and per eps of stability (the event loop turns in between, so a signal
 * interrupts there), one step or boundary call for the other sweeps. The CLI's analysis commands run these programs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { attachPeftAdapters, loadPeftAdapters } from "../adapters/adapter-dirs.js";
import type { LoraAdapter } from "../adapters/lora.js";
import {
  adapterEfficiency,
  adapterSignificance,
  type ComparisonPoint,
  compareAtEqualNorm,
  type CurvePoint,
  type NormSolution,
  type SignificanceOptions,
  type SignificancePoint,
  type StabilityPoint,
  significance,
  stabilityPoint,
  steeringEfficiency,
} from "../analysis/experiments.js";
import { checkpointLossGradients, followsMethod, type LossGradientRow, type LossGradientRun } from "../analysis/checkpoint-gradients.js";
import { loadDirection, readSteeringVectorFile } from "../analysis/files.js";
import { type ControlKind, generateWithIntervention, type InterventionRun, randomControlDirection } from "../analysis/intervention-run.js";
import { datasetLoss } from "../analysis/loss.js";
import type { RescaleMode } from "../analysis/rescale.js";
import { checkpointSteps } from "../analysis/trajectories.js";
import { openNormSolution, type OpenSolution, openSteeringSolution } from "../analysis/solution-handles.js";
import { significanceControls } from "../analysis/significance-controls.js";
import type { LoadedModel } from "../models/load.js";
import type { TorchError } from "../tensor/errors.js";
import { type Tensor, tidy } from "../tensor/index.js";
import { type RunConfig, RunConfigError } from "../train/config.js";
import type { Example } from "../train/data.js";
import { type BoundaryError, boundary, InvalidSetupError } from "./errors.js";
import { ModelService } from "./services.js";
import { step } from "./step.js";

/** The learned solution an efficiency / stability program works on: a steering vector file, or PEFT adapter directories. */
export type SolutionSource = { steering: string; layer?: number } | { adapters: string };

/** The solution of `source` attached to `model` while the Scope is open; detached / unhooked and freed when it closes. */
export function scopedSolution(model: LoadedModel, source: SolutionSource): Effect.Effect<OpenSolution, BoundaryError, Scope.Scope> {
  if ("steering" in source)
    return Effect.acquireRelease(
      boundary(() => openSteeringSolution(model, source.steering, source.layer)),
      (s) => Effect.sync(() => s.close()),
    );
  return Effect.acquireRelease(
    boundary(() => attachPeftAdapters(source.adapters, model)),
    (adapters) =>
      Effect.sync(() => {
        for (const a of adapters) {
          model.decoder.adapters.detach(a);
          a.dispose();
        }
      }),
  ).pipe(
    Effect.map((adapters): OpenSolution => ({
      kind: "adapter",
      steering: null,
      adapters,
      tensors: adapters.flatMap((a) => a.parameters()),
      off: (fn) => model.decoder.adapters.withoutAdapters(fn),
      close: () => {},
    })),
  );
}

/** The LoRA adapters of `spec` loaded (not attached) while the Scope is open; freed when it closes. */
export function scopedPeftAdapters(spec: string, model: LoadedModel): Effect.Effect<LoraAdapter[], BoundaryError, Scope.Scope> {
  return Effect.acquireRelease(
    boundary(() => loadPeftAdapters(spec, model)),
    (adapters) => Effect.sync(() => adapters.forEach((a) => a.dispose())),
  );
}

export interface EfficiencyProgramOptions {
  solution: SolutionSource;
  /** The fixed loss subset (e.g. `lossSubset` of a chat dataset). */
  examples: readonly Example[];
  /** Norm multipliers. */
  scales: readonly number[];
  /** Adapter rescaling semantics (default "ours"). */
  rescale?: RescaleMode;
  onProgress?: (done: number, total: number) => void;
}

/**
 * The efficiency curve (loss against the solution's rescaled norm) of a steering vector file or adapter
 * directories: one step per scale, the event loop turning in between (so a signal interrupts between scales).
 */
export function efficiencyProgram(
  options: EfficiencyProgramOptions,
): Effect.Effect<CurvePoint[], BoundaryError | TorchError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const s = yield* scopedSolution(model, options.solution);
    const pad = tokenizer.padTokenId ?? 0;
    const points: CurvePoint[] = [];
    for (const scale of options.scales) {
      yield* Effect.yieldNow;
      const [point] = yield* step(() =>
        s.steering
          ? steeringEfficiency(model, s.steering, options.examples, [scale], pad)
          : adapterEfficiency(model, s.adapters, options.examples, [scale], pad, options.rescale),
      );
      points.push(point!);
      options.onProgress?.(points.length, options.scales.length);
    }
    return points;
  });
}

export interface StabilityProgramOptions {
  solution: SolutionSource;
  examples: readonly Example[];
  eps: readonly number[];
  seeds: readonly number[];
  onProgress?: (done: number, total: number) => void;
}

/**
 * The perturbation stability of a steering vector file or adapter directories (`stability`); L_base is the
 * loss with the solution off. One step per eps, the event loop turning in between.
 */
export function stabilityProgram(
  options: StabilityProgramOptions,
): Effect.Effect<{ l0: number; lBase: number; points: StabilityPoint[] }, BoundaryError | TorchError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const s = yield* scopedSolution(model, options.solution);
    const padId = tokenizer.padTokenId ?? 0;
    const baseLoss = yield* step(() => s.off(() => datasetLoss(model, options.examples, { padId })));
    const l0 = yield* step(() => datasetLoss(model, options.examples, { padId }));
    const total = options.eps.length * options.seeds.length;
    let done = 0;
    const points: StabilityPoint[] = [];
    for (const eps of options.eps) {
      yield* Effect.yieldNow;
      points.push(
        yield* step(() =>
          stabilityPoint(model, s.tensors, options.examples, eps, {
            seeds: options.seeds,
            l0,
            baseLoss,
            padId,
            onSeed: () => options.onProgress?.(++done, total),
          }),
        ),
      );
    }
    return { l0, lBase: baseLoss, points };
  });
}

export interface SignificanceProgramOptions extends SignificanceOptions {
  documents: readonly string[];
  /** Steering vector files (each multiplied by its file's alpha unless `alpha` is given); needs `layer` or a file's layer. */
  vectors?: readonly string[];
  /** Random control vectors added after the files (`significanceControls`), labelled random-0, random-1 ...; alpha: `alpha`, else the first file's, else 1. */
  random?: { count: number; kind: "study" | "ours"; seed: number };
  /** Adapter specs: KL(base || base + adapters) for each. */
  adapters?: readonly string[];
  layer?: number;
  alpha?: number;
  /** Vector norms (default 0..5 by 0.2). */
  norms?: readonly number[];
}

export interface SignificanceResult {
  points: SignificancePoint[];
  /** The vectors swept (files, then random controls) with the alpha each was multiplied by. */
  vectors: { label: string; alpha: number }[];
  adapters: string[];
  /** The layer the vectors were added at (undefined without vectors). */
  layer: number | undefined;
}

/** KL(base || steered) for steering vector files and random controls over a norm grid, then KL(base || base + adapters) for each adapter spec. */
export function significanceProgram(
  options: SignificanceProgramOptions,
): Effect.Effect<SignificanceResult, BoundaryError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const vectors: { label: string; vector: Tensor; alpha: number }[] = [];
    let fileLayer: number | null = null;
    for (const file of options.vectors ?? []) {
      const read = yield* Effect.acquireRelease(
        boundary(() => readSteeringVectorFile(file)),
        (r) => Effect.sync(() => r.vector.dispose()),
      );
      if (read.vector.ndim !== 1 || read.vector.size(0) !== model.spec.hiddenSize)
        return yield* new InvalidSetupError({
          message: `${file}: the vector has shape [${read.vector.shape.join(", ")}], the model needs [${model.spec.hiddenSize}]`,
        });
      fileLayer ??= read.layer;
      vectors.push({ label: file, vector: read.vector, alpha: options.alpha ?? read.alpha ?? 1 });
    }
    const random = options.random;
    if (random !== undefined && random.count > 0) {
      const alpha = options.alpha ?? vectors[0]?.alpha ?? 1;
      const controls = yield* Effect.acquireRelease(
        boundary(() => significanceControls(model, random.count, random.kind, random.seed, vectors[0]?.vector)),
        (list) => Effect.sync(() => list.forEach((t) => t.dispose())),
      );
      controls.forEach((vector, i) => vectors.push({ label: `random-${i}`, vector, alpha }));
    }
    const layer = options.layer ?? fileLayer ?? undefined;
    if (vectors.length > 0 && (layer === undefined || !Number.isInteger(layer) || layer < 0 || layer >= model.spec.layers.length))
      return yield* new InvalidSetupError({
        message: `layer ${layer ?? "(none given, none in the files)"} is not a layer of this model (0..${model.spec.layers.length - 1})`,
      });
    const solutions: { label: string; adapters: LoraAdapter[] }[] = [];
    for (const spec of options.adapters ?? []) solutions.push({ label: spec, adapters: yield* scopedPeftAdapters(spec, model) });
    const sweep: SignificanceOptions = {
      maxTokens: options.maxTokens,
      batchSize: options.batchSize,
      includePads: options.includePads,
      onProgress: options.onProgress,
    };
    // boundary (not step): the sweep checks its documents (DocumentsError) as well as running the model.
    const vectorPoints =
      vectors.length === 0
        ? []
        : yield* boundary(() =>
            tidy(() =>
              significance(model, tokenizer, options.documents, vectors, {
                ...sweep,
                layer: layer!,
                norms: options.norms ?? Array.from({ length: 26 }, (_, i) => i / 5),
              }),
            ),
          );
    yield* Effect.yieldNow;
    const adapterPoints =
      solutions.length === 0
        ? []
        : yield* boundary(() => tidy(() => adapterSignificance(model, tokenizer, options.documents, solutions, sweep)));
    return {
      points: [...vectorPoints, ...adapterPoints],
      vectors: vectors.map(({ label, alpha }) => ({ label, alpha })),
      adapters: solutions.map((s) => s.label),
      layer: vectors.length > 0 ? layer : undefined,
    };
  });
}

export interface LossGradientsProgramOptions {
  /** emlab train run directories (LoRA or steering; config.resolved.json and checkpoints/); steps default to every checkpoint. */
  runs: readonly { dir: string; label?: string; steps?: readonly number[] }[];
  /** The fixed subset whose CE gradient is recomputed at each checkpoint. */
  examples: readonly Example[];
  /** Direction file: cosine of steering runs' loss gradients with its row at the run's layer. */
  directions?: string;
  onProgress?: (done: number, total: number) => void;
}

/** A run's config.resolved.json as the trainer wrote it (already resolved; a missing file is Node's error, bad JSON a RunConfigError). */
function readResolvedConfig(runDir: string): RunConfig {
  const file = join(runDir, "config.resolved.json");
  const text = readFileSync(file, "utf8");
  try {
    return JSON.parse(text) as RunConfig;
  } catch (error) {
    throw new RunConfigError({ message: `${file}: ${(error as Error).message}`, file });
  }
}

/** The loss gradients at every checkpoint of LoRA / steering runs (what `emlab gradients --data` writes), the direction scoped. */
export function lossGradientsProgram(
  options: LossGradientsProgramOptions,
): Effect.Effect<LossGradientRow[], BoundaryError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const runs: LossGradientRun[] = [];
    for (const run of options.runs) {
      const config = yield* boundary(() => readResolvedConfig(run.dir));
      if (!followsMethod(config))
        return yield* new InvalidSetupError({
          message: `${run.dir}: a ${config.method} run; loss gradients follow LoRA and steering runs`,
        });
      const steps = run.steps ?? (yield* boundary(() => checkpointSteps(run.dir)));
      runs.push({ dir: run.dir, label: run.label ?? run.dir, config, steps });
    }
    const file = options.directions;
    const directions =
      file === undefined
        ? null
        : yield* Effect.acquireRelease(
            boundary(() => loadDirection(file, model.decoder.device)),
            (d) => Effect.sync(() => d.dispose()),
          );
    // boundary (not step): reading each checkpoint's safetensors is part of the sweep.
    return yield* boundary(() =>
      tidy(() =>
        checkpointLossGradients(model, runs, options.examples, {
          padId: tokenizer.padTokenId ?? 0,
          directions,
          onProgress: options.onProgress,
        }),
      ),
    );
  });
}

export interface InterventionProgramOptions extends Omit<InterventionRun, "direction" | "eosTokenIds"> {
  /**
   * Direction file from `emlab direction` ([layers, d_model]) or a steering vector file ([d_model]), loaded
   * for the program; or a direction tensor the caller already holds (borrowed, not freed here).
   */
  direction: string | Tensor;
  /** Replace the direction by its seeded random control. */
  randomControl?: { seed: number; kind: ControlKind };
  /** Ids that end an answer (default: none, so answers run to maxNewTokens). */
  eosTokenIds?: readonly number[];
}

/** A direction file loaded onto the model's device while the Scope is open (freed on close). */
export function scopedDirectionFile(file: string, model: LoadedModel): Effect.Effect<Tensor, BoundaryError, Scope.Scope> {
  return Effect.acquireRelease(
    boundary(() => loadDirection(file, model.decoder.device)),
    (d) => Effect.sync(() => d.dispose()),
  );
}

/** The seeded random control of `direction` (same shape) while the Scope is open (freed on close). */
export function scopedRandomControl(
  direction: Tensor,
  control: { seed: number; kind: ControlKind },
): Effect.Effect<Tensor, BoundaryError, Scope.Scope> {
  return Effect.acquireRelease(
    boundary(() => randomControlDirection(direction, control.seed, control.kind)),
    (d) => Effect.sync(() => d.dispose()),
  );
}

/** Answers generated with the direction steered in or ablated (hooks removed afterwards; the direction and its control scoped). */
export function interventionProgram(
  options: InterventionProgramOptions,
): Effect.Effect<{ texts: string[]; outputIds: number[][] }, BoundaryError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const given = options.direction;
    const loaded = typeof given === "string" ? yield* scopedDirectionFile(given, model) : given;
    const control = options.randomControl;
    const direction = control ? yield* scopedRandomControl(loaded, control) : loaded;
    const { randomControl: _, ...run } = options;
    return yield* boundary(() =>
      tidy(() => generateWithIntervention(model, tokenizer, { ...run, direction, eosTokenIds: options.eosTokenIds ?? [] })),
    );
  });
}

/** A solution of `compareNormsProgram`: a steering vector file (.pt / .pth / .safetensors) or an adapter spec. */
export interface CompareNormsProgramOptions {
  narrow: string;
  general: string;
  /** Layer of vector files (default: each file's own). */
  layer?: number;
  examples: readonly Example[];
  /** Multipliers of the mean of the two solutions' norms. */
  scales: readonly number[];
  /** Adapter rescaling semantics (default "ours"). */
  rescale?: RescaleMode;
  onProgress?: (done: number, total: number) => void;
}

export interface CompareNormsResult {
  /** mean(||narrow||, ||general||) */
  reference: number;
  narrowNorm: number;
  generalNorm: number;
  points: ComparisonPoint[];
}

/** A compare-norms solution opened (loaded, attached only while it is evaluated) while the Scope is open; freed on close. */
export function scopedNormSolution(
  spec: string,
  model: LoadedModel,
  layer: number | undefined,
  mode: RescaleMode,
): Effect.Effect<NormSolution, BoundaryError, Scope.Scope> {
  return Effect.acquireRelease(
    boundary(() => openNormSolution(spec, model, layer, mode)),
    (s) => Effect.sync(() => s.close()),
  );
}

/**
 * The study's equal-norm comparison of two solutions (`compareAtEqualNorm`): loss(narrow) - loss(general)
 * with both rescaled to scales * the mean of their norms; one step per scale, the event loop turning in between.
 */
export function compareNormsProgram(
  options: CompareNormsProgramOptions,
): Effect.Effect<CompareNormsResult, BoundaryError | TorchError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const mode = options.rescale ?? "ours";
    const narrow = yield* scopedNormSolution(options.narrow, model, options.layer, mode);
    const general = yield* scopedNormSolution(options.general, model, options.layer, mode);
    const padId = tokenizer.padTokenId ?? 0;
    const points: ComparisonPoint[] = [];
    for (const scale of options.scales) {
      yield* Effect.yieldNow;
      const { points: one } = yield* step(() => compareAtEqualNorm(model, narrow, general, options.examples, [scale], { padId }));
      points.push(one[0]!);
      options.onProgress?.(points.length, options.scales.length);
    }
    return { reference: (narrow.norm + general.norm) / 2, narrowNorm: narrow.norm, generalNorm: general.norm, points };
  });
}
