/** Learning-rate schedules with linear warmup (Hugging Face's definitions): multipliers of the base lr. */

export type ScheduleName = "constant" | "linear" | "cosine";

/** lr multiplier for optimizer step `step` (0-based) of `total`. */
export function lrMultiplier(schedule: ScheduleName, step: number, total: number, warmup: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  if (schedule === "constant") return 1;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  if (schedule === "linear") return Math.max(0, 1 - progress);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
