/**
 * How the micro-batches of one optimiser step add up to the step's objective under gradient
 * accumulation. emlab's default is the mean over micro-batches of (CE_micro + weight x KL_micro).
 * The study's trainers (transformers 4.52, whose Trainer does not divide by the accumulation steps
 * for models that take loss kwargs, e.g. Qwen2ForCausalLM) differ, read from the released code and
 * the library, not measured in a run:
 * - LoRA / KL LoRA (SFTTrainer, KLRegularizedSFTTrainer; protocol.md §7.2-§7.3): CE normalised by the
 *   target count of the whole window ("window_tokens"), plus weight x KL of every micro-batch ("sum"):
 *   CE(window) + weight x sum_micro KL_micro.
 * - Steering vectors (KLToggleSteeringVectorTrainer calls model(**inputs), so no window count): each
 *   micro-batch's mean CE, summed ("micro_sum"), plus weight x KL of every micro-batch ("sum").
 */
import type { Example } from "./data.js";

export type CeReduction = "micro_mean" | "window_tokens" | "micro_sum";
export type KlAccumulation = "mean" | "sum";

/**
 * Positions that receive a loss: labels after the causal shift (position 0 is never a target) that are
 * not -100. (transformers counts unshifted labels != -100; the two agree whenever position 0 is
 * masked, as with response-only labels.)
 */
export function lossTargets(examples: readonly Example[]): number {
  let n = 0;
  for (const e of examples) for (let i = 1; i < e.labels.length; i++) if (e.labels[i] !== -100) n++;
  return n;
}

/**
 * The factor on a micro-batch's mean CE in the step objective: 1 / accumulation ("micro_mean"), 1
 * ("micro_sum"), or its share of the window's targets ("window_tokens": sum of its token losses / window targets).
 */
export function ceFactor(reduction: CeReduction, microTargets: number, windowTargets: number, accumulation: number): number {
  if (reduction === "micro_mean") return 1 / accumulation;
  if (reduction === "micro_sum") return 1;
  return windowTargets === 0 ? 0 : microTargets / windowTargets;
}

/** The factor on a micro-batch's KL value: weight / accumulation ("mean") or weight ("sum", the study). */
export function klFactor(mode: KlAccumulation, weight: number, accumulation: number): number {
  return mode === "sum" ? weight : weight / accumulation;
}
