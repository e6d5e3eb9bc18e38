/**
 * `emlab train CONFIG.(json|yaml) [--resume] [--nproc N ...]`: runs the training recipe and writes the
 * run directory (config.resolved.json, metrics.jsonl, checkpoints/, the final adapter / vector / model).
 * Paths in the config resolve relative to the config file. With --nproc it launches N ranks of a
 * data-parallel run (src/distributed/launcher.ts); a process started with RANK/WORLD_SIZE in its
 * environment (by that launcher or torchrun) trains as that rank.
 */
import { Effect } from "effect";
import { trainDataParallel } from "../distributed/launcher.js";
import { ProcessGroup, processGroupOptionsFromEnv } from "../distributed/process-group.js";
import { trainingProgram, type TrainRunOptions } from "../recipes/train.js";
import { readRunConfig } from "../train/config.js";
import { dataParallelOptions } from "../distributed/data-parallel.js";
import { UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";
import { runInterruptible } from "./runtime.js";

export const trainCommand = defineCommand({
  name: "train",
  summary: "LoRA / full SFT / steering-vector training with an optional KL penalty; exact resume; data-parallel with --nproc.",
  positionals: [{ name: "CONFIG", description: "run config (JSON or YAML); its paths are relative to the file" }],
  options: {
    resume: { type: "boolean", description: "continue from the newest checkpoint (a finished run is left as it is)" },
    nproc: { type: "string", description: "data-parallel: start N training processes on this node (c10d; Gloo on CPU, NCCL on CUDA)" },
    nnodes: { type: "string", description: "data-parallel: nodes in the run (each runs the same command with its --node-rank)" },
    "node-rank": { type: "string", description: "data-parallel: this node's index, 0..nnodes-1" },
    "master-addr": { type: "string", description: "data-parallel: host of rank 0's rendezvous store (default 127.0.0.1)" },
    "master-port": { type: "string", description: "data-parallel: port of the store (default: a free port; required with --nnodes > 1)" },
    backend: { type: "string", description: "data-parallel: gloo or nccl (default nccl when training.device is cuda, else gloo)" },
  },
});

const integer = (name: string, text: string | undefined, min: number): number | undefined => {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`${name} ${text}: an integer >= ${min}`);
  return Number(text);
};

/**
 * Runs the recipe as the process's main fiber: Ctrl-C / SIGTERM checkpoint the run and exit 130 / 143.
 * With --nproc it launches the ranks and resolves with the launch's exit code.
 */
export async function runTrain(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(trainCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const config = readRunConfig(positionals[0]!);
  const nproc = integer("--nproc", values.nproc, 1);
  if (nproc !== undefined) {
    const backend = values.backend ?? (config.training.device.startsWith("cuda") ? "nccl" : "gloo");
    if (backend !== "gloo" && backend !== "nccl") throw new UsageError(`--backend ${backend}: gloo or nccl`);
    const result = await trainDataParallel(positionals[0]!, {
      resume: values.resume,
      nproc,
      nnodes: integer("--nnodes", values.nnodes, 1),
      nodeRank: integer("--node-rank", values["node-rank"], 0),
      masterAddr: values["master-addr"],
      masterPort: integer("--master-port", values["master-port"], 1),
      env: { EMLAB_DIST_BACKEND: backend },
    });
    return result.exitCode;
  }
  const progress = progressReporter("train");
  const tty = process.stderr.isTTY;
  let options: TrainRunOptions = {
    resume: values.resume,
    log: (line) => process.stderr.write(`${line}\n`),
    onStep: (m, total) => {
      if (tty) progress(m.step, total);
      else
        process.stderr.write(
          `step ${m.step}/${total} loss ${m.loss.toFixed(4)} ce ${m.ce.toFixed(4)}${m.kl === null ? "" : ` kl ${m.kl.toExponential(3)}`} lr ${m.lr.toExponential(2)} grad_norm ${m.grad_norm.toFixed(3)} ${m.tokens_per_s.toFixed(0)} tok/s\n`,
        );
    },
  };
  // One rank of a data-parallel run (RANK/WORLD_SIZE from the launcher or torchrun).
  const rank = processGroupOptionsFromEnv();
  const group = rank !== null && rank.worldSize > 1 ? ProcessGroup.create(rank) : null;
  try {
    if (group) {
      // EMLAB_DIST_BUCKET_BYTES: the gradient bucket size (default about 25 MB).
      const bucketBytes = Number(process.env.EMLAB_DIST_BUCKET_BYTES) > 0 ? Number(process.env.EMLAB_DIST_BUCKET_BYTES) : undefined;
      options = dataParallelOptions(group, config, { ...options, bucketBytes });
    }
    return await runInterruptible(
      Effect.map(trainingProgram(config, options), (result) => {
        if (group === null || group.rank === 0) process.stdout.write(`${JSON.stringify(result)}\n`);
        return 0;
      }),
    );
  } finally {
    group?.destroy();
  }
}
