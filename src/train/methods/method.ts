/**
 * What a training method contributes to the training recipe (src/recipes/train.ts): the tensors the
 * optimizer trains, the logits of the reference model for KL terms, and its final artefact. A method
 * is built in the recipe's Scope: whatever it allocates (adapters, a steering vector and its hook, a
 * frozen reference copy) is released when the run ends, whether it finished, failed or was interrupted.
 * The three methods live next to this file (lora.ts, steering.ts, full.ts); none of them runs a step.
 */
import type { Tensor } from "../../tensor/index.js";
import type { Batch } from "../data.js";

export interface TrainingMethod {
  readonly kind: "lora" | "steering" | "full";
  /** The tensors being trained, by the names checkpoints store them under. */
  readonly trainables: ReadonlyMap<string, Tensor>;
  /** Logits [batch, pos, vocab] of the reference model (the method switched off, or a frozen copy) on `batch`. */
  referenceLogits(batch: Batch): Tensor;
  /** Where the final artefact goes in `outputDir` (also what tells a resumed run it already finished). */
  artefactPath(outputDir: string): string;
  /** Writes the final artefact into `outputDir`; returns its path. */
  saveArtefact(outputDir: string): string;
}
