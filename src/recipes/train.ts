/**
 * The training recipe behind `emlab train CONFIG`: one Effect program from a resolved run config to a
 * run directory, in three parts. Set-up: every resource (model, the method's adapters / steering
 * vector / frozen reference copy, master weights, optimizer) is acquired in the program's Scope, so a
 * failure at any stage, or an interruption, releases what was acquired before it. Loop: one optimizer
 * step (src/train/step.ts) is one synchronous block between two yields to the event loop; an
 * interruption (Ctrl-C in the CLI) lands between steps and writes a checkpoint that `--resume`
 * continues from exactly. Save: held-out loss and the method's artefact. `runTraining` runs the
 * program synchronously for scripts and tests, `runTrainingAsync` as a Promise.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { makeOutputDir, writeOutputFile } from "../io/output.js";
import { type LoadedModel, loadModel } from "../models/load.js";
import { AdamW } from "../optim/index.js";
import { type Device, manualSeed, type Tensor } from "../tensor/index.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { attempt, type TaggedFailure } from "../train/attempt.js";
import {
  checkpointDir,
  latestCheckpoint,
  loadCheckpoint,
  readCheckpointPosition,
  removeStaleCheckpointTemporaries,
  saveCheckpoint,
  type TrainerPosition,
} from "../train/checkpoint.js";
import type { RunConfig } from "../train/config.js";
import type { LossTerm } from "../train/losses.js";
import { MasterWeights } from "../train/master-weights.js";
import { MetricsLog } from "../train/metrics-log.js";
import { fullMethod } from "../train/methods/full.js";
import { loraMethod } from "../train/methods/lora.js";
import type { TrainingMethod } from "../train/methods/method.js";
import { steeringMethod } from "../train/methods/steering.js";
import { BatchCursor, readRunData } from "../train/run-data.js";
import { enterStage, type InjectedStageFailure } from "../train/setup-stages.js";
import { heldOutLoss, type ParallelStepSeam, type StepContext, type StepMetrics, trainStep } from "../train/step.js";
import { RunDirectoryError, RunInputError } from "../train/inputs.js";
import { checkRunInputs, type TrainerCallbacks, type TrainerModel, type TrainerState } from "../train/trainer.js";

export type { StepMetrics } from "../train/step.js";

export interface TrainRunOptions {
  resume?: boolean;
  /** Extra loss terms (library users); their hook points are captured on every training forward. */
  lossTerms?: readonly LossTerm[];
  /** An already loaded model (tokenizer, adapters) to train instead of loading `config.model`; the caller keeps ownership. */
  model?: TrainerModel;
  /** Lifecycle callbacks (src/train/trainer.ts). */
  callbacks?: TrainerCallbacks;
  onStep?: (metrics: StepMetrics, totalSteps: number) => void;
  log?: (line: string) => void;
  /** One rank of a data-parallel run: its shard of each batch; only a writing rank writes (src/train/step.ts). */
  dataParallel?: ParallelStepSeam;
  /** Between backward and the optimizer step, with the optimized tensors' gradients (a data-parallel all-reduce). */
  afterBackward?: (optimized: ReadonlyMap<string, Tensor>) => void;
}

export interface TrainRunResult {
  outputDir: string;
  steps: number;
  finalLoss: number;
  stoppedEarly: boolean;
  artefact: string;
  /** True when `resume` found the run already finished: nothing was trained or written. */
  alreadyFinished?: boolean;
}

/** A training run that failed with a typed error (a bad input, a non-finite step, a libtorch op error...). */
export type TrainingError = TaggedFailure | InjectedStageFailure;

/** The model of the run: the caller's (left alone) or loaded from `config.model` and freed with the Scope. */
const acquireModel = (config: RunConfig, provided: TrainerModel | undefined): Effect.Effect<LoadedModel, TrainingError, Scope.Scope> =>
  provided
    ? Effect.succeed(provided.model)
    : Effect.acquireRelease(
        attempt(() => loadModel(config.model, { dtype: config.training.dtype, device: config.training.device as Device })),
        (model) => Effect.sync(() => model.dispose()),
      );

const acquireMethod = (
  config: RunConfig,
  model: LoadedModel,
  provided: TrainerModel | undefined,
): Effect.Effect<TrainingMethod, TrainingError, Scope.Scope> => {
  if (config.method === "lora") return loraMethod(config, model, provided?.adapters);
  if (config.method === "steering") return steeringMethod(config, model);
  return fullMethod(config, model);
};

/** The resolved config as written to config.resolved.json (compared on --resume). */
const resolvedText = (config: RunConfig): string => `${JSON.stringify(config, null, 2)}\n`;

/**
 * The training run as an Effect program. Fails with the typed errors of its inputs and steps; on
 * interruption between steps it writes a checkpoint of the current step (unless one exists) and says
 * where in `options.log`.
 */
export const trainingProgram = (config: RunConfig, options: TrainRunOptions = {}): Effect.Effect<TrainRunResult, TrainingError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const log = options.log ?? (() => {});
      const t = config.training;
      const out = config.output_dir;
      // ---- set-up: inputs checked, then every resource owned by the Scope -------------------
      const resolvedFile = join(out, "config.resolved.json");
      const checkpoint = yield* attempt(() => {
        checkRunInputs(config, { modelProvided: options.model !== undefined });
        if (options.resume && existsSync(resolvedFile) && readFileSync(resolvedFile, "utf8") !== resolvedText(config)) {
          throw new RunDirectoryError({
            dir: out,
            file: resolvedFile,
            message: `${out}: --resume with a config that differs from ${resolvedFile}`,
          });
        }
        return options.resume ? latestCheckpoint(out) : null;
      });
      const metricsLog = new MetricsLog(out);
      if (!options.resume && metricsLog.exists())
        return yield* Effect.fail(
          new RunDirectoryError({
            dir: out,
            file: metricsLog.file,
            message: `${out} already holds a run; use --resume or a new output_dir`,
          }),
        );
      manualSeed(t.seed);

      yield* enterStage("model");
      const model = yield* acquireModel(config, options.model);
      yield* enterStage("tokenizer");
      const tokenizer = options.model?.tokenizer ?? (yield* attempt(() => ChatTokenizer.fromDir(model.dir)));
      yield* enterStage("method");
      const method = yield* acquireMethod(config, model, options.model);
      if (method.trainables.size === 0) {
        const field = config.method === "full" ? "full.parameters" : config.method === "lora" ? "lora.target_modules" : config.method;
        const message = `nothing to train: no parameter of ${model.dir} matched ${field}`;
        return yield* Effect.fail(new RunInputError({ field, file: model.dir, message }));
      }
      yield* enterStage("data");
      const data = yield* attempt(() => readRunData(config, tokenizer, model.eosTokenIds, log));
      log(
        `train ${data.trainSet.length} examples, held out ${data.evalSet.length}, ${data.totalSteps} optimizer steps, ${method.trainables.size} trainable tensors`,
      );

      // A finished run resumed: say so and change nothing.
      const finishedAt = checkpoint ? readCheckpointPosition(checkpoint) : null;
      const artefactPath = method.artefactPath(out);
      if (
        finishedAt &&
        existsSync(artefactPath) &&
        (finishedAt.step >= data.totalSteps || (t.early_stop !== null && finishedAt.lowLossStreak > t.early_stop.patience))
      ) {
        log(`${out}: the run already finished at step ${finishedAt.step} (${artefactPath}); nothing to do`);
        const lastLoss = readFileSync(join(out, "metrics.jsonl"), "utf8")
          .split("\n")
          .filter(Boolean)
          .map((line) => JSON.parse(line) as { loss?: number })
          .filter((m) => m.loss !== undefined)
          .at(-1)?.loss;
        return {
          outputDir: out,
          steps: finishedAt.step,
          finalLoss: lastLoss ?? Number.NaN,
          stoppedEarly: finishedAt.step < data.totalSteps,
          artefact: artefactPath,
          alreadyFinished: true,
        };
      }
      // Every input has been read and checked: the run directory is written from here on.
      const writes = options.dataParallel?.writes ?? true;
      if (writes)
        yield* attempt(() => {
          makeOutputDir(out);
          for (const stale of removeStaleCheckpointTemporaries(out)) log(`removed ${stale} (left by an interrupted run)`);
          writeOutputFile(resolvedFile, resolvedText(config));
        });

      yield* enterStage("optimizer");
      // Low-precision full SFT trains float32 master copies (LoRA and steering tensors are float32 already).
      const masters =
        config.method === "full" && t.dtype !== "f32"
          ? yield* Effect.acquireRelease(
              Effect.sync(() => new MasterWeights(method.trainables)),
              (m) => Effect.sync(() => m.dispose()),
            )
          : null;
      const optimized = masters ? masters.masters : method.trainables;
      const optimizer = yield* Effect.acquireRelease(
        Effect.sync(() => new AdamW([...optimized.values()], { lr: t.lr, betas: t.betas, eps: t.eps, weightDecay: t.weight_decay })),
        (o) => Effect.sync(() => o.dispose()),
      );
      let position: TrainerPosition = { step: 0, epoch: 0, batchInEpoch: 0, klCursor: 0, lowLossStreak: 0 };
      if (checkpoint) {
        position = yield* attempt(() => loadCheckpoint(checkpoint, optimized, optimizer));
        masters?.pushWeights();
        log(`resumed from ${checkpoint} at step ${position.step}`);
      }
      // Steps after the checkpoint (all of them without one) are run again, the final line written again.
      if (options.resume && writes) metricsLog.truncateAfter(position.step);
      const lastGoodRng = yield* Effect.acquireRelease(
        Effect.sync(() => ({ tensor: null as Tensor | null })),
        (holder) => Effect.sync(() => holder.tensor?.dispose()),
      );
      // Training mode (LoRA dropout) for the loop only, also when it fails or is interrupted.
      yield* Effect.acquireRelease(
        Effect.sync(() => void (model.decoder.adapters.training = true)),
        () => Effect.sync(() => void (model.decoder.adapters.training = false)),
      );
      const state: TrainerState = { model, tokenizer, trainables: method.trainables, totalSteps: data.totalSteps, outputDir: out };
      const callbacks = options.callbacks ?? {};
      const ctx: StepContext = {
        config,
        model,
        method,
        data,
        position,
        optimizer,
        optimized,
        masters,
        callbacks,
        state,
        metricsLog,
        lastGoodRng,
        log,
        cursor: new BatchCursor(config, data, position),
        lossTerms: options.lossTerms ?? [],
        onStep: options.onStep,
        parallel: options.dataParallel,
        afterBackward: options.afterBackward,
      };
      callbacks.setup?.(state);

      // ---- loop: one synchronous step at a time, the event loop turning in between ----------------
      let finalLoss = Number.NaN;
      // A run resumed from its early-stop checkpoint (interrupted before its artefact was written) trains no further.
      let stoppedEarly = t.early_stop !== null && position.lowLossStreak > t.early_stop.patience;
      let first = true;
      const loop = Effect.gen(function* () {
        while (position.step < data.totalSteps && !stoppedEarly) {
          yield* Effect.yieldNow;
          if (first) yield* enterStage("first-step");
          first = false;
          const outcome = yield* attempt(() => trainStep(ctx));
          if (outcome.kind === "exhausted") break;
          finalLoss = outcome.metrics.loss;
          stoppedEarly = outcome.stoppedEarly;
        }
      });
      yield* loop.pipe(Effect.onInterrupt(() => Effect.sync(() => checkpointOnInterrupt(ctx))));
      yield* Effect.yieldNow;

      // ---- save: held-out loss and the artefact ---------------------------------------------------
      model.decoder.adapters.training = false;
      const artefact = yield* attempt(() => {
        const heldOut = data.evalSet.length > 0 ? heldOutLoss(ctx) : Number.NaN;
        if (!writes) return artefactPath;
        if (Number.isFinite(heldOut)) {
          metricsLog.append({ step: position.step, final_eval_loss: heldOut });
          callbacks.evaluation?.({ step: position.step, loss: heldOut, final: true }, state);
        }
        return method.saveArtefact(out);
      });
      return { outputDir: out, steps: position.step, finalLoss, stoppedEarly, artefact };
    }),
  );

/** On interruption between steps: a checkpoint of the position reached (the regular one if it exists). */
function checkpointOnInterrupt(ctx: StepContext): void {
  const { position } = ctx;
  const out = ctx.config.output_dir;
  if (position.step === 0) {
    ctx.log(`interrupted before the first step finished; no checkpoint written (${out})`);
    return;
  }
  const dir = checkpointDir(out, position.step);
  if (ctx.parallel && !ctx.parallel.writes) return;
  if (!existsSync(dir)) saveCheckpoint(out, position, ctx.optimized, ctx.optimizer, new Map());
  ctx.log(`interrupted after step ${position.step}; checkpoint in ${dir} (continue with --resume)`);
}

/** Runs the training recipe to completion, synchronously; throws its error (typed ones as they are). */
export function runTraining(config: RunConfig, options: TrainRunOptions = {}): TrainRunResult {
  return Effect.runSync(trainingProgram(config, options));
}

/** The training recipe as a Promise (the event loop turns between steps). */
export function runTrainingAsync(config: RunConfig, options: TrainRunOptions = {}): Promise<TrainRunResult> {
  return Effect.runPromise(trainingProgram(config, options));
}
