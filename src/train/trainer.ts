/**
 * The extension surface of the training recipe (src/recipes/train.ts) for custom objectives: what a
 * caller may hand in instead of paths (an already loaded model, its tokenizer, LoRA adapters), the
 * lifecycle callbacks, and the forward + backward of one batch that captures the hook points the loss
 * terms declare, plain or through per-layer gradient checkpointing (the activations' gradients are
 * then injected when each layer is recomputed: the same gradients, up to float summation order).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { LoraAdapter } from "../adapters/lora.js";
import type { HookPoint } from "../hooks/points.js";
import type { LoadedModel } from "../models/load.js";
import type { Tensor } from "../tensor/index.js";
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import type { RunConfig } from "./config.js";
import type { Batch } from "./data.js";
import { RunInputError } from "./inputs.js";
import type { LossTerm } from "./losses.js";
import { checkpointedForward } from "./checkpointed-forward.js";

/** What the caller already holds; the recipe uses it instead of loading from `config.model` (and does not dispose it). */
export interface TrainerModel {
  model: LoadedModel;
  /** Default: the tokenizer in `model.dir`. */
  tokenizer?: ChatTokenizer;
  /** For `method: lora`: train these adapters (attached if they are not) instead of creating them from `config.lora`. */
  adapters?: readonly LoraAdapter[];
}

/** What the callbacks see of a run. */
export interface TrainerState {
  readonly model: LoadedModel;
  readonly tokenizer: ChatTokenizer;
  /** The tensors being trained, by name (their `.grad` is filled between backward and the optimizer step). */
  readonly trainables: ReadonlyMap<string, Tensor>;
  /** Optimizer steps of the whole run. */
  readonly totalSteps: number;
  readonly outputDir: string;
}

/** Lifecycle callbacks, each optional, all called synchronously in the training loop. */
export interface TrainerCallbacks {
  /** After set-up (model, method, data, optimizer, resume), before the first step. */
  setup?(state: TrainerState): void;
  /** Before the micro-batches of optimizer step `step` (0-based). */
  beforeStep?(step: number, state: TrainerState): void;
  /** After every micro-batch's backward of step `step`, before clipping and the optimizer: gradients are readable. */
  afterBackward?(step: number, state: TrainerState): void;
  /** After the optimizer step, with the step's metrics line (`metrics.step` counts completed steps). */
  afterStep?(metrics: Readonly<Record<string, unknown>> & { step: number; loss: number }, state: TrainerState): void;
  /** After a held-out evaluation (every eval_steps, and at the end with `final: true`). */
  evaluation?(result: { step: number; loss: number; final: boolean }, state: TrainerState): void;
  /** After a checkpoint was written to `dir`. */
  checkpoint?(dir: string, step: number, state: TrainerState): void;
}

/** The points every term needs, once each. */
export function capturedPoints(terms: readonly LossTerm[]): HookPoint[] {
  return [...new Set(terms.flatMap((term) => term.points ?? []))];
}

/**
 * Forward on `batch`, loss from its logits and the captured activations, backward: plain, or through
 * per-layer checkpoints (gradients of the captured activations injected during recomputation).
 */
export function backwardThrough(
  model: LoadedModel,
  batch: Batch,
  options: { checkpointing: boolean; capture: readonly HookPoint[] },
  lossOf: (logits: Tensor, activations: ReadonlyMap<HookPoint, Tensor>) => Tensor,
): void {
  const forward = { attentionMask: batch.attentionMask, capture: options.capture };
  if (!options.checkpointing) {
    const out = model.decoder.forward(batch.ids, forward);
    lossOf(out.logits!, out.activations).backward();
    return;
  }
  const run = checkpointedForward(model.decoder, batch.ids, forward);
  try {
    lossOf(run.logits, run.activations).backward();
    run.finish();
  } finally {
    run.dispose();
  }
}

/** Every input file of a run config exists (checked before anything is written). */
export function checkRunInputs(config: RunConfig, options: { modelProvided: boolean }): void {
  const files: [string, string][] = [["data.train", config.data.train]];
  if (!options.modelProvided) files.unshift(["model", join(config.model, "config.json")]);
  if (config.data.eval !== null) files.push(["data.eval", config.data.eval]);
  if (config.kl !== null) files.push(["kl.data", config.kl.data]);
  for (const [field, file] of files)
    if (!existsSync(file)) throw new RunInputError({ field, file, message: `${field}: ${file} does not exist` });
}
