/**
 * Guards of the training loop: batches whose every target is masked (a row cut short by
 * data.max_length, or one without assistant tokens) are an error naming their rows, found before
 * training starts; a non-finite loss or gradient norm is detected per step and reported as a typed
 * error naming the step and the checkpoint of the last good step.
 */
import { Data } from "effect";
import type { Example } from "./data.js";

/** A batch (training or held-out) in which no token carries a label. */
export class UnlabeledBatchError extends Data.TaggedError("UnlabeledBatchError")<{
  readonly message: string;
  readonly rows: readonly string[];
}> {}

/** A step whose loss or gradient was NaN or infinite. */
export class NonFiniteStepError extends Data.TaggedError("NonFiniteStepError")<{
  readonly message: string;
  readonly step: number;
  readonly checkpoint: string;
}> {}

/** Whether the causal-LM loss has a target in `example` (labels are unshifted: position 0 is never a target). */
export function hasTarget(example: Example): boolean {
  for (let i = 1; i < example.labels.length; i++) if (example.labels[i] !== -100) return true;
  return false;
}

const rowsOf = (examples: readonly Example[]): string[] => examples.map((e, i) => e.source ?? `example ${i}`);

function unlabeledError(examples: readonly Example[], where: string, maxLength: number): UnlabeledBatchError {
  const rows = rowsOf(examples);
  return new UnlabeledBatchError({
    message: `${where}: no token of rows ${rows.join(", ")} has a label (assistant tokens cut off by data.max_length ${maxLength}, or none)`,
    rows,
  });
}

/**
 * Checks every batch the run will draw (`epochs` epochs of `batchesOf(epoch)`, indices into
 * `examples`) and every held-out batch (consecutive `batchSize` slices of `heldOut`).
 */
export function assertLabelledBatches(
  examples: readonly Example[],
  batchesOf: (epoch: number) => number[][],
  epochs: number,
  heldOut: readonly Example[],
  batchSize: number,
  maxLength: number,
): void {
  if (!examples.every(hasTarget)) {
    if (!examples.some(hasTarget))
      throw unlabeledError(
        examples.filter((_, i) => i < 10),
        "training data",
        maxLength,
      );
    for (let epoch = 0; epoch < epochs; epoch++) {
      for (const batch of batchesOf(epoch)) {
        const rows = batch.map((i) => examples[i]!);
        if (!rows.some(hasTarget)) throw unlabeledError(rows, `training batch in epoch ${epoch}`, maxLength);
      }
    }
  }
  for (let i = 0; i < heldOut.length; i += batchSize) {
    const rows = heldOut.slice(i, i + batchSize);
    if (!rows.some(hasTarget)) throw unlabeledError(rows, "held-out batch", maxLength);
  }
}

/** What was not finite in a step, or null. */
export function nonFiniteIn(values: Readonly<Record<string, number>>): string | null {
  const bad = Object.entries(values).filter(([, v]) => !Number.isFinite(v));
  return bad.length === 0 ? null : bad.map(([k, v]) => `${k} ${v}`).join(", ");
}
