/**
 * The fixed evaluation loss of the efficiency and stability analyses: mean of per-batch mean
 * cross-entropy on a seeded subset of a chat dataset (100 examples by default), computed without
 * gradients under whatever adapters, steering or hooks are active.
 */
import type { LoadedModel } from "../models/load.js";
import { causalLmLoss } from "../nn/losses.js";
import { inferenceMode, tidy } from "../tensor/index.js";
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { type ChatExample, collate, type Example, permutation, tokenizeExample, type TokenizeOptions } from "../train/data.js";

/** A seeded subset of `count` examples, tokenised once. */
export function lossSubset(tokenizer: ChatTokenizer, examples: readonly ChatExample[], options: TokenizeOptions & { count?: number; seed?: number } = {}): Example[] {
  const order = permutation(examples.length, options.seed ?? 42).slice(0, Math.min(options.count ?? 100, examples.length));
  return order.map((i) => tokenizeExample(tokenizer, examples[i]!.messages, { maxLength: 1024, ...options }));
}

/** Mean over batches of the batch-mean causal-LM loss. */
export function datasetLoss(model: LoadedModel, examples: readonly Example[], options: { batchSize?: number; padId?: number } = {}): number {
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
