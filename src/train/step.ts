/**
 * One optimizer step of the training recipe, synchronous (the recipe runs it as one Effect between two
 * yields to the event loop): draw the accumulation window, forward + backward of every micro-batch
 * (CE, KL against the method's reference, custom terms), then `afterBackward` (the seam where a
 * data-parallel run all-reduces the gradients), clipping, the non-finite guard, AdamW, schedule,
 * metrics, held-out evaluation, checkpoint, early stop.
 */
import { existsSync } from "node:fs";
import { datasetLoss } from "./dataset-loss.js";
import type { LoadedModel } from "../models/load.js";
import { causalLmLoss } from "../nn/losses.js";
import { type AdamW, clipGradNorm } from "../optim/index.js";
import { enableGrad, getRngState, noGrad, type Tensor, tidy } from "../tensor/index.js";
import { checkpointDir, saveCheckpoint, type TrainerPosition } from "./checkpoint.js";
import type { RunConfig } from "./config.js";
import { collate, type Example } from "./data.js";
import { NonFiniteStepError, nonFiniteIn } from "./guards.js";
import { klPenalty, type LossTerm } from "./losses.js";
import type { MasterWeights } from "./master-weights.js";
import type { MetricsLog } from "./metrics-log.js";
import type { TrainingMethod } from "./methods/method.js";
import { ceFactor, klFactor, lossTargets } from "./objective.js";
import type { BatchCursor, RunData } from "./run-data.js";
import { lrMultiplier } from "./schedule.js";
import { snapshotGradients } from "./gradient-snapshot.js";
import { backwardThrough, capturedPoints, type TrainerCallbacks, type TrainerState } from "./trainer.js";

export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  ce: number;
  kl: number | null;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  terms?: Record<string, number>;
  eval_loss?: number;
  /** Set when the step's update was dropped (training.on_nonfinite: skip). */
  skipped?: string;
}

/**
 * One rank of a data-parallel run (the component of src/distributed/data-parallel.ts plugs in here): the
 * rank's shard of every micro-batch with the factor on its mean CE, sums of step metrics across
 * ranks, and whether this rank writes (rank 0: checkpoints, metrics, artefact). Its gradient
 * all-reduce goes in `afterBackward`.
 */
export interface ParallelStepSeam {
  readonly writes: boolean;
  shard(examples: readonly Example[]): { examples: Example[]; share: number };
  sumAcross(values: readonly number[]): number[];
}

/** Everything a step reads or advances; built once by the recipe's set-up. */
export interface StepContext {
  readonly config: RunConfig;
  readonly model: LoadedModel;
  readonly method: TrainingMethod;
  readonly data: RunData;
  readonly cursor: BatchCursor;
  /** Advanced by every step (what checkpoints store). */
  readonly position: TrainerPosition;
  readonly optimizer: AdamW;
  /** What the optimizer updates: the method's trainables, or their float32 masters. */
  readonly optimized: ReadonlyMap<string, Tensor>;
  readonly masters: MasterWeights | null;
  readonly lossTerms: readonly LossTerm[];
  readonly callbacks: TrainerCallbacks;
  readonly state: TrainerState;
  readonly metricsLog: MetricsLog;
  /** The CPU RNG state before the current step (the last good step's, for a non-finite one); owned by the recipe's Scope. */
  readonly lastGoodRng: { tensor: Tensor | null };
  /**
   * Called after every micro-batch's backward and the master-weight gradient pull, before clipping:
   * a data-parallel run all-reduces `optimized`'s gradients here.
   */
  readonly afterBackward?: (optimized: ReadonlyMap<string, Tensor>) => void;
  /** Set in one rank of a data-parallel run. */
  readonly parallel?: ParallelStepSeam;
  readonly onStep?: (metrics: StepMetrics, totalSteps: number) => void;
  readonly log: (line: string) => void;
}

export type StepOutcome =
  { readonly kind: "exhausted" } | { readonly kind: "stepped"; readonly metrics: StepMetrics; readonly stoppedEarly: boolean };

/** Held-out loss of the current weights. */
export const heldOutLoss = (ctx: StepContext): number =>
  datasetLoss(ctx.model, ctx.data.evalSet as Example[], { batchSize: ctx.config.training.batch_size, padId: ctx.data.pad });

/** Runs optimizer step `ctx.position.step` (0-based) to completion; throws NonFiniteStepError under on_nonfinite: error. */
export function trainStep(ctx: StepContext): StepOutcome {
  const { config, model, method, position, optimizer, optimized, masters, lossTerms, callbacks, state } = ctx;
  const t = config.training;
  const out = config.output_dir;
  const totalSteps = ctx.data.totalSteps;
  const device = model.decoder.device;
  const pad = ctx.data.pad;
  const forwardOptions = { checkpointing: t.gradient_checkpointing, capture: capturedPoints(lossTerms) };
  const writes = ctx.parallel?.writes ?? true;
  const started = Date.now();
  callbacks.beforeStep?.(position.step, state);
  // Where a non-finite step would be checkpointed from: the position and RNG before it.
  const lastGood = { ...position };
  ctx.lastGoodRng.tensor?.dispose();
  ctx.lastGoodRng.tensor = getRngState();
  const lr = t.lr * lrMultiplier(t.schedule, position.step, totalSteps, t.warmup_steps);
  for (const group of optimizer.groups) group.options.lr = lr;
  let ce = 0;
  let ceObjective = 0;
  let kl = 0;
  let tokens = 0;
  let micro = 0;
  const terms: Record<string, number> = {};
  // The whole accumulation window is drawn first: the study's CE is normalised by its target count.
  const window: Example[][] = [];
  for (let i = 0; i < t.gradient_accumulation; i++) {
    const examples = ctx.cursor.next();
    if (examples === null) break;
    window.push(examples);
  }
  const windowTargets = lossTargets(window.flat());
  for (; micro < window.length; micro++) {
    const parallel = ctx.parallel;
    const { examples, share } = parallel ? parallel.shard(window[micro]!) : { examples: window[micro]!, share: 1 };
    const ceWeight = ceFactor(t.ce_reduction, lossTargets(window[micro]!), windowTargets, t.gradient_accumulation) * share;
    tidy(() =>
      enableGrad(() => {
        const batch = collate(examples, pad, device);
        tokens += batch.tokens;
        const termReference = lossTerms.some((term) => term.reference) ? noGrad(() => method.referenceLogits(batch)) : null;
        backwardThrough(model, batch, forwardOptions, (logits, activations) => {
          const ceLoss = causalLmLoss(logits, batch.labels);
          const ceValue = ceLoss.toNumber();
          ce += share === 1 ? ceValue : share === 0 ? 0 : ceValue * share;
          // A micro-batch without targets adds nothing to a token-weighted window (its mean CE is 0/0).
          let loss = ceWeight === 0 ? logits.sum().mul(0) : ceLoss.mul(ceWeight);
          if (ceWeight !== 0) ceObjective += ceValue * ceWeight;
          for (const term of lossTerms) {
            const value = term.compute({
              model,
              batch,
              logits,
              activations,
              referenceLogits: term.reference ? termReference : null,
              step: position.step,
            });
            terms[term.name] = (terms[term.name] ?? 0) + value.toNumber();
            loss = loss.add(value.mul(term.weight / t.gradient_accumulation));
          }
          return loss;
        });
        if (config.kl) {
          const kl_ = config.kl;
          const klBatch = collate(ctx.cursor.nextKl(), pad, device);
          const reference = noGrad(() => method.referenceLogits(klBatch));
          backwardThrough(model, klBatch, { ...forwardOptions, capture: [] }, (current) => {
            const penalty = klPenalty(current, reference, klBatch.attentionMask, kl_.normalization);
            kl += penalty.toNumber();
            return penalty.mul(klFactor(kl_.accumulation, kl_.weight, t.gradient_accumulation));
          });
        }
      }),
    );
  }
  if (micro === 0) return { kind: "exhausted" };
  if (ctx.parallel) [ce = 0, ceObjective = 0, tokens = 0] = ctx.parallel.sumAcross([ce, ceObjective, tokens]);
  callbacks.afterBackward?.(position.step, state);
  masters?.pullGradients();
  ctx.afterBackward?.(optimized);
  const atCheckpoint = position.step + 1 === totalSteps || (position.step + 1) % t.save_steps === 0;
  // Checkpoints keep the accumulated gradient as it was before clipping (as the study saved it, §7.9).
  const gradients = atCheckpoint ? snapshotGradients(optimized) : new Map<string, Tensor>();
  try {
    const gradNorm = clipGradNorm([...optimized.values()], t.max_grad_norm ?? Number.POSITIVE_INFINITY);
    const nonFinite = nonFiniteIn({ ce, ...(config.kl ? { kl } : {}), ...terms, grad_norm: gradNorm });
    if (nonFinite !== null && t.on_nonfinite === "error") {
      optimizer.zeroGrad();
      // The regular checkpoint of that step, when there is one, is kept as it is (with its gradient snapshot).
      const regular = checkpointDir(out, lastGood.step);
      const saved =
        existsSync(regular) || !writes
          ? regular
          : saveCheckpoint(out, lastGood, optimized, optimizer, new Map(), { rngState: ctx.lastGoodRng.tensor! });
      throw new NonFiniteStepError({
        message: `step ${position.step + 1}: non-finite ${nonFinite}; the last good step ${lastGood.step} is checkpointed in ${saved} (training.on_nonfinite: skip drops such steps)`,
        step: position.step + 1,
        checkpoint: saved,
      });
    }
    if (nonFinite === null) {
      optimizer.step();
      masters?.pushWeights();
    }
    position.step++;
    optimizer.zeroGrad();
    // Logged values are the step objective's parts: CE as reduced over the window, weight x KL as accumulated.
    const ceOfStep = t.ce_reduction === "micro_mean" ? ce / micro : ceObjective;
    const klOfStep = config.kl ? (config.kl.accumulation === "sum" ? config.kl.weight * kl : (config.kl.weight * kl) / micro) : 0;
    const metrics: StepMetrics = {
      step: position.step,
      epoch: position.epoch,
      loss:
        ceOfStep +
        klOfStep +
        Object.entries(terms).reduce((s, [name, v]) => s + v * lossTerms.find((x) => x.name === name)!.weight, 0) / micro,
      ce: ceOfStep,
      kl: config.kl ? kl / micro : null,
      lr,
      grad_norm: gradNorm,
      tokens_per_s: tokens / Math.max(1e-3, (Date.now() - started) / 1000),
      ...(Object.keys(terms).length > 0 ? { terms: Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, v / micro])) } : {}),
      ...(nonFinite !== null ? { skipped: `non-finite ${nonFinite}` } : {}),
    };
    if (t.eval_steps && position.step % t.eval_steps === 0 && ctx.data.evalSet.length > 0) {
      metrics.eval_loss = heldOutLoss(ctx);
      callbacks.evaluation?.({ step: position.step, loss: metrics.eval_loss, final: false }, state);
    }
    if (writes) ctx.metricsLog.append(metrics);
    ctx.onStep?.(metrics, totalSteps);
    callbacks.afterStep?.(metrics as StepMetrics & Record<string, unknown>, state);
    let stoppedEarly = false;
    if (t.early_stop) {
      position.lowLossStreak = metrics.loss < t.early_stop.loss_below ? position.lowLossStreak + 1 : 0;
      if (position.lowLossStreak > t.early_stop.patience) stoppedEarly = true;
    }
    if ((atCheckpoint || stoppedEarly) && writes) {
      saveCheckpoint(out, position, optimized, optimizer, gradients);
      callbacks.checkpoint?.(checkpointDir(out, position.step), position.step, state);
    }
    if (stoppedEarly)
      ctx.log(`early stop at step ${position.step}: loss below ${t.early_stop!.loss_below} for more than ${t.early_stop!.patience} steps`);
    return { kind: "stepped", metrics, stoppedEarly };
  } finally {
    for (const g of gradients.values()) g.dispose();
  }
}
