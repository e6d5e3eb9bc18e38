/**
 * The data of one training run, read and checked before anything is written: tokenized training,
 * held-out and KL examples, the step count, the batch order per epoch, and the cursor that draws the
 * next training / KL batch from a trainer position (the position is what checkpoints store).
 */
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import type { TrainerPosition } from "./checkpoint.js";
import type { RunConfig } from "./config.js";
import { epochBatches, type Example, heldOutSplit, readChatDataset, tokenizeExample } from "./data.js";
import { assertLabelledBatches } from "./guards.js";
import { RunInputError } from "./inputs.js";

export interface RunData {
  readonly trainSet: readonly Example[];
  readonly evalSet: readonly Example[];
  readonly klSet: readonly Example[];
  readonly pad: number;
  readonly totalSteps: number;
}

/** Reads, tokenizes and checks every dataset of `config` (throws a typed error naming the file/row). */
export function readRunData(
  config: RunConfig,
  tokenizer: ChatTokenizer,
  eosTokenIds: readonly number[],
  log: (line: string) => void,
): RunData {
  const t = config.training;
  const tokenizeAll = (file: string, lossOn: RunConfig["data"]["loss_on"]): Example[] => {
    const { examples, skipped } = readChatDataset(file, { skipInvalid: config.data.skip_invalid });
    if (skipped > 0) log(`${file}: skipped ${skipped} invalid rows`);
    return examples.map((e) => ({
      ...tokenizeExample(tokenizer, e.messages, { lossOn, systemPrompt: config.data.system_prompt, maxLength: config.data.max_length }),
      source: `${file}:${e.line}`,
    }));
  };
  const all = tokenizeAll(config.data.train, config.data.loss_on);
  let trainSet = all;
  let evalSet: Example[] = [];
  if (config.data.eval) evalSet = tokenizeAll(config.data.eval, config.data.loss_on);
  else if (config.data.eval_fraction > 0) {
    const split = heldOutSplit(all.length, config.data.eval_fraction, t.seed);
    trainSet = split.train.map((i) => all[i]!);
    evalSet = split.heldOut.map((i) => all[i]!);
  }
  if (trainSet.length === 0)
    throw new RunInputError({ field: "data.train", file: config.data.train, message: `${config.data.train}: no training examples` });
  const klSet = config.kl ? tokenizeAll(config.kl.data, "all") : [];
  const pad = tokenizer.padTokenId ?? tokenizer.endOfTurnIds(eosTokenIds)[0] ?? 0;
  const batchesPerEpoch = Math.ceil(trainSet.length / t.batch_size);
  const totalSteps = t.max_steps ?? Math.ceil((batchesPerEpoch * t.epochs) / t.gradient_accumulation);
  const epochsDrawn = t.max_steps === null ? t.epochs : Math.ceil((t.max_steps * t.gradient_accumulation) / batchesPerEpoch);
  const lengths = trainSet.map((e) => e.ids.length);
  assertLabelledBatches(
    trainSet,
    (epoch) => epochBatches(lengths, t.batch_size, t.seed, epoch, config.data.bucket_window),
    epochsDrawn,
    evalSet,
    t.batch_size,
    config.data.max_length,
  );
  return { trainSet, evalSet, klSet, pad, totalSteps };
}

/** Draws batches in the run's order, advancing `position` (epoch, batch in epoch, KL cursor) as it goes. */
export class BatchCursor {
  private order: number[][];
  private readonly lengths: number[];

  constructor(
    private readonly config: RunConfig,
    private readonly data: RunData,
    private readonly position: TrainerPosition,
  ) {
    this.lengths = data.trainSet.map((e) => e.ids.length);
    this.order = this.epochOrder(position.epoch);
  }

  private epochOrder(epoch: number): number[][] {
    const t = this.config.training;
    return epochBatches(this.lengths, t.batch_size, t.seed, epoch, this.config.data.bucket_window);
  }

  /** The next training batch, or null when the last epoch is exhausted (runs without max_steps). */
  next(): Example[] | null {
    const p = this.position;
    if (p.batchInEpoch >= this.order.length) {
      p.epoch++;
      p.batchInEpoch = 0;
      if (this.config.training.max_steps === null && p.epoch >= this.config.training.epochs) return null;
      this.order = this.epochOrder(p.epoch);
    }
    return this.order[p.batchInEpoch++]!.map((i) => this.data.trainSet[i]!);
  }

  /** The next KL batch (the KL set cycled in order). */
  nextKl(): Example[] {
    const size = this.config.kl!.batch_size;
    const klSet = this.data.klSet;
    const batch = Array.from({ length: size }, (_, i) => klSet[(this.position.klCursor + i) % klSet.length]!);
    this.position.klCursor = (this.position.klCursor + size) % klSet.length;
    return batch;
  }
}
