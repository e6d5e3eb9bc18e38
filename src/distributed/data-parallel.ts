/**
 * Data-parallel training on a c10d process group: the seam the training recipe calls (which slice of
 * each global micro-batch this rank trains on and its share of that micro-batch's loss, sums of step
 * metrics across ranks, whether this rank writes the run directory) and the bucketed gradient
 * all-reduce run between backward and the optimizer step. One process with the same config sees the
 * same global batches; each rank weights its slice's mean CE by its share of the micro-batch's target
 * tokens, so the SUM of the ranks' gradients is the one-process gradient for every `ce_reduction`
 * (every rank reads the whole data set, so token counts need no communication). What cannot be made
 * exact (KL penalty batches, extra loss terms, LoRA dropout) is refused before anything is written.
 * Launching the processes is src/distributed/launcher.ts's job.
 */
import type { ProcessGroup } from "./process-group.js";
import { DistributedError } from "./process-group.js";
import { runTraining, type TrainRunOptions, type TrainRunResult } from "../recipes/train.js";
import type { ParallelStepSeam } from "../train/step.js";
import { cat, noGrad, type Tensor, tensor, tidy, zerosLike } from "../tensor/index.js";
import type { RunConfig } from "../train/config.js";
import type { Example } from "../train/data.js";
import { lossTargets } from "../train/objective.js";

/**
 * What the training step asks of data parallelism (src/train/step.ts): only rank 0 writes; `shard` gives
 * this rank's slice of a global micro-batch and the factor on its mean CE (its share of the micro-batch's
 * targets); `sumAcross` sums step metrics (CE parts, token counts) over the ranks.
 */
export type DataParallelSeam = ParallelStepSeam;

/** Default gradient bucket: about 25 MB, as torch's DistributedDataParallel. */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/** The contiguous slice [start, end) of `size` items that `rank` of `worldSize` takes (the first size % worldSize ranks take one more). */
export function shardRange(size: number, rank: number, worldSize: number): [number, number] {
  const base = Math.floor(size / worldSize);
  const extra = size % worldSize;
  const start = rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

/** The seam for `group`: contiguous shards of every global micro-batch, target-weighted shares. */
export function dataParallelSeam(group: ProcessGroup): DataParallelSeam {
  return {
    writes: group.rank === 0,
    shard(examples) {
      if (examples.length < group.worldSize) {
        throw new DistributedError({
          message: `a batch of ${examples.length} examples cannot be split over ${group.worldSize} processes (every rank needs at least one example of every batch: raise training.batch_size or lower --nproc)`,
          reason: "invalid",
          op: "shard",
          rank: group.rank,
        });
      }
      const [start, end] = shardRange(examples.length, group.rank, group.worldSize);
      const mine = examples.slice(start, end);
      const all = lossTargets(examples);
      return { examples: mine, share: all === 0 ? 0 : lossTargets(mine) / all };
    },
    sumAcross(values) {
      // float64 so that token counts and loss parts add up as exactly as one process's JS numbers.
      return tidy(() => {
        // NCCL reduces CUDA tensors only (each rank sees its one GPU as "cuda").
        const packed = tensor([...values], { dtype: "f64", device: group.backend === "nccl" ? "cuda" : "cpu" });
        group.allreduce(packed, "sum");
        return Array.from(packed.toArray() as Float64Array);
      });
    },
  };
}

/**
 * Sums every trainable tensor's gradient across ranks in place, flattened into buckets of about
 * `bucketBytes` (consecutive tensors of one dtype and device); a missing gradient counts as zeros.
 */
export function allReduceGradients(group: ProcessGroup, trainables: ReadonlyMap<string, Tensor>, bucketBytes = DEFAULT_BUCKET_BYTES): void {
  noGrad(() =>
    tidy(() => {
      const grads: Tensor[] = [];
      for (const parameter of trainables.values()) {
        let grad = parameter.grad;
        if (grad === null) {
          parameter.grad = zerosLike(parameter);
          grad = parameter.grad!;
        }
        grads.push(grad);
      }
      let bucket: Tensor[] = [];
      let bytes = 0;
      const flush = () => {
        if (bucket.length === 0) return;
        const flat = cat(bucket.map((g) => g.reshape(-1)));
        group.allreduce(flat, "sum");
        let offset = 0;
        for (const g of bucket) {
          const n = g.numel;
          g.copy_(flat.narrow(0, offset, n).view(g.shape));
          offset += n;
        }
        bucket = [];
        bytes = 0;
      };
      for (const g of grads) {
        const size = g.numel * bytesPer(g);
        const last = bucket.at(-1);
        if (last && (last.dtype !== g.dtype || last.device !== g.device || bytes + size > bucketBytes)) flush();
        bucket.push(g);
        bytes += size;
      }
      flush();
    }),
  );
}

const bytesPer = (t: Tensor): number => (t.dtype === "f64" || t.dtype === "i64" ? 8 : t.dtype === "f32" || t.dtype === "i32" ? 4 : 2);

/** Why `config` (with these options) cannot run data-parallel with the same result as one process, or null. */
export function dataParallelRefusal(config: RunConfig, options: Pick<TrainRunOptions, "lossTerms">, worldSize: number): string | null {
  if (config.kl !== null) return "kl: the KL penalty's batches are not sharded yet; train with one process";
  if ((options.lossTerms ?? []).length > 0) return "extra loss terms are not supported with data parallelism; train with one process";
  if (config.method === "lora" && config.lora.some((l) => l.dropout > 0))
    return "lora.dropout > 0: each rank would draw other dropout masks than one process; set dropout 0 or train with one process";
  if (config.training.batch_size < worldSize)
    return `training.batch_size ${config.training.batch_size} < ${worldSize} processes: every rank needs at least one example per batch`;
  return null;
}

/**
 * The recipe options that make a run one rank of `group` (for `trainingProgram` or `runTraining`): the
 * seam, logs and progress on rank 0 only, parameters broadcast from rank 0 after set-up, gradients of
 * the optimized tensors summed across ranks between backward and clipping (in buckets of `bucketBytes`,
 * default DEFAULT_BUCKET_BYTES). Throws a DistributedError for what cannot match one process.
 */
export function dataParallelOptions(
  group: ProcessGroup,
  config: RunConfig,
  options: TrainRunOptions & { bucketBytes?: number } = {},
): TrainRunOptions {
  const refusal = dataParallelRefusal(config, options, group.worldSize);
  if (refusal !== null) throw new DistributedError({ message: refusal, reason: "invalid", op: "train", rank: group.rank });
  const user = options.callbacks ?? {};
  const writer = group.rank === 0;
  const { bucketBytes, ...rest } = options;
  return {
    ...rest,
    dataParallel: dataParallelSeam(group),
    log: writer ? options.log : undefined,
    onStep: writer ? options.onStep : undefined,
    afterBackward: (optimized) => {
      allReduceGradients(group, optimized, bucketBytes);
      options.afterBackward?.(optimized);
    },
    callbacks: {
      ...user,
      setup(state) {
        // Same seed on every rank gives the same start; the broadcast makes it so whatever the init.
        noGrad(() => {
          for (const parameter of state.trainables.values()) group.broadcast(parameter, 0);
        });
        user.setup?.(state);
      },
    },
  };
}

/** Runs the training recipe (synchronously) as one rank of `group`: same config and data on every rank, rank 0 writes. */
export function runDataParallelTraining(
  group: ProcessGroup,
  config: RunConfig,
  options: TrainRunOptions & { bucketBytes?: number } = {},
): TrainRunResult {
  return runTraining(config, dataParallelOptions(group, config, options));
}
