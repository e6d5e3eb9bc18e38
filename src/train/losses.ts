/**
 * Training losses: masked next-token cross-entropy, the KL penalty KL(reference || current) over the
 * non-pad tokens of auxiliary batches, and the typed API for custom loss terms (computed from
 * logits, hooked activations, the batch and the model, weighted, logged per term).
 */
import type { HookPoint } from "../hooks/points.js";
import type { LoadedModel } from "../models/load.js";
import { klDiv, type Tensor, tidy } from "../tensor/index.js";
import type { Batch } from "./data.js";

/**
 * KL(reference || current) per position from logits [batch, pos, vocab] (reference without grad),
 * averaged over mask positions. "token": mean per-token KL; "token_vocab": divided further by the
 * vocabulary size, the study's normalisation (so its weights 1e5 / 1e6 mean the same here).
 */
export function klPenalty(
  current: Tensor,
  reference: Tensor,
  attentionMask: Tensor,
  normalization: "token" | "token_vocab" = "token",
): Tensor {
  return tidy(() => {
    const logCurrent = current.to("f32").logSoftmax(-1);
    const logReference = reference.to("f32").logSoftmax(-1).detach();
    const perToken = klDiv(logCurrent, logReference, { reduction: "none", logTarget: true }).sum(-1); // [batch, pos]
    const mask = attentionMask.to({ dtype: "f32", device: current.device });
    const tokens = mask.sum();
    const mean = perToken.mul(mask).sum().div(tokens.clamp(1));
    return normalization === "token_vocab" ? mean.div(current.size(-1)) : mean;
  });
}

/** Everything a custom loss term may use. */
export interface LossContext {
  readonly model: LoadedModel;
  readonly batch: Batch;
  /** [batch, pos, vocab] logits of the training batch (with grad). */
  readonly logits: Tensor;
  /**
   * The activations at the term's `points` in this forward pass (after every registered hook), in the
   * autograd graph: a loss on them trains from step 0, with or without gradient checkpointing.
   */
  readonly activations: ReadonlyMap<HookPoint, Tensor>;
  /** Logits of the reference model (the method switched off, or the frozen copy) on this batch, without grad; null unless `reference` is set. */
  readonly referenceLogits: Tensor | null;
  /** The training step (0-based). */
  readonly step: number;
}

/** A named, weighted extra loss term; its (unweighted) value is logged per step. */
export interface LossTerm {
  readonly name: string;
  readonly weight: number;
  /** Hook points whose activations the term reads (captured on every training forward). */
  readonly points?: readonly HookPoint[];
  /** The term needs `referenceLogits` (one extra forward per micro-batch without grad). */
  readonly reference?: boolean;
  compute(context: LossContext): Tensor;
}
