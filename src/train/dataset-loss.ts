/**
 * The loss of a model on a fixed list of tokenised examples: mean over batches of the batch-mean
 * causal-LM cross-entropy, without gradients, under whatever adapters, steering or hooks are active.
 * Training uses it for its eval loss; the analyses (src/analysis/loss.ts) for their fixed subsets.
 */
import type { LoadedModel } from "../models/load.js";
import { causalLmLoss } from "../nn/losses.js";
import { inferenceMode, tidy } from "../tensor/index.js";
import { collate, type Example } from "./data.js";

/** Mean over batches of the batch-mean causal-LM loss. */
export function datasetLoss(
  model: LoadedModel,
  examples: readonly Example[],
  options: { batchSize?: number; padId?: number } = {},
): number {
  const batchSize = options.batchSize ?? 4;
  let total = 0;
  let batches = 0;
  inferenceMode(() => {
    for (let i = 0; i < examples.length; i += batchSize) {
      total += tidy(() => {
        const b = collate(examples.slice(i, i + batchSize), options.padId ?? 0, model.decoder.device);
        return causalLmLoss(model.decoder.forward(b.ids, { attentionMask: b.attentionMask }).logits!, b.labels).toNumber();
      });
      batches++;
    }
  });
  return batches === 0 ? Number.NaN : total / batches;
}
