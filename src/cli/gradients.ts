/**
 * `emlab gradients --run RUN[,RUN...] --out DIR [--labels a,b] [--params REGEX] [--components 3]
 *  [--model CHAT --data NARROW.jsonl [--directions FILE] [--count 100]]`
 *
 * Gradient and trajectory analyses of training runs of any method (LoRA, steering, full SFT with
 * --params). Writes into DIR (which must not exist):
 * - trajectory.csv  run,step,param_norm,update_norm,update_cosine_prev,grad_norm,grad_cosine_prev
 *                   (grad_* from the accumulated gradient each checkpoint saved, before clipping)
 * - pca.csv         run,step,pc1..pcK: scores of every checkpoint of every run in ONE PCA fitted on all
 *                   of them together (general and narrow runs in one space)
 * - pca_explained.csv  component,explained_variance_ratio
 * - loss_gradients.csv (with --data; needs --model) run,step,loss_grad_norm,cosine_with_params,
 *                   cosine_with_training_gradient,cosine_with_direction: the gradient of the mean CE on
 *                   --count rows of --data recomputed at each checkpoint (cosine_with_direction: steering
 *                   runs with --directions, against the direction's row at the run's layer).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checkpointLossGradients, followsMethod, type LossGradientRow, type LossGradientRun } from "../analysis/checkpoint-gradients.js";
import { loadDirection } from "../analysis/files.js";
import { lossSubset } from "../analysis/loss.js";
import { disposeTrajectory, jointPca, type RunTrajectory, readRunTrajectory, trajectoryRows } from "../analysis/trajectories.js";
import { formatCsvRow } from "../eval/csv.js";
import { makeOutputDir, writeOutputFile } from "../io/output.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import type { RunConfig } from "../train/config.js";
import { readChatDataset } from "../train/data.js";
import { parseNumber, required, UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

const cell = (v: number | null): string | number => (v === null ? "" : v);
const writeCsv = (file: string, header: string[], rows: (string | number)[][]) =>
  writeOutputFile(file, formatCsvRow(header) + rows.map((r) => formatCsvRow(r)).join(""));

export const gradientsCommand = defineCommand({
  name: "gradients",
  summary: "Trajectories of training runs of any method (norms, local cosines, pre-clipping gradients), one joint PCA, loss gradients.",
  options: {
    ...modelOptions,
    // The model is needed only for --data (loss gradients); the trajectory outputs read checkpoints alone.
    model: { ...modelOptions.model, required: false, description: "the chat model the runs trained on (needed with --data)" },
    run: {
      type: "string",
      value: "RUN[,RUN...]",
      required: true,
      description: "emlab train run directories (config.resolved.json, checkpoints/)",
    },
    labels: { type: "string", value: "A[,B...]", description: "names of the runs in the outputs (default: their directories)" },
    out: {
      type: "string",
      value: "DIR",
      required: true,
      description: "output directory (must not exist): trajectory.csv, pca.csv, pca_explained.csv[, loss_gradients.csv]",
    },
    params: { type: "string", value: "REGEX", description: "only trainable tensors whose names match" },
    components: { type: "string", value: "K", default: "3", description: "principal components" },
    data: {
      type: "string",
      value: "FILE.jsonl",
      description: "chat dataset whose CE gradient is recomputed at each checkpoint (needs --model)",
    },
    count: { type: "string", value: "N", default: "100", description: "rows of --data (seeded subset)" },
    directions: {
      type: "string",
      value: "FILE",
      description: "direction file: cosine of steering runs' loss gradients with its row at the run's layer",
    },
  },
});

export function runGradients(argv: readonly string[]): number {
  const parsed = parseOrHelp(gradientsCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const runs = required("--run", values.run)
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  if (runs.length === 0) throw new UsageError("--run: give at least one run directory");
  const labels = values.labels ? values.labels.split(",").map((l) => l.trim()) : runs;
  if (labels.length !== runs.length) throw new UsageError(`--labels: ${labels.length} labels for ${runs.length} runs`);
  const out = required("--out", values.out);
  if (existsSync(out)) throw new UsageError(`${out} exists; choose a new --out directory`);
  let filter: RegExp | null = null;
  try {
    filter = values.params ? new RegExp(values.params) : null;
  } catch (error) {
    throw new UsageError(`--params: ${(error as Error).message}`);
  }
  const components = parseNumber("--components", values.components, { integer: true, min: 1 }) ?? 3;
  if (values.data && !values.model) throw new UsageError("--data needs --model (the chat model the runs trained on)");
  if (values.directions && !values.data) throw new UsageError("--directions applies to the loss gradients of --data");
  const configs = runs.map((run) => {
    const file = join(run, "config.resolved.json");
    if (!existsSync(file)) throw new UsageError(`${run}: no config.resolved.json (is it an emlab train run?)`);
    return JSON.parse(readFileSync(file, "utf8")) as RunConfig;
  });

  const trajectories: RunTrajectory[] = [];
  try {
    for (const [i, run] of runs.entries()) trajectories.push(readRunTrajectory(run, { label: labels[i]!, filter }));
    // Everything is computed before the output directory is created: a failure leaves nothing behind.
    const rows = trajectories.flatMap(trajectoryRows);
    const joint = jointPca(trajectories, components);
    const lossRows = values.data
      ? lossGradients(
          values,
          runs.map((dir, i) => ({ dir, label: labels[i]!, config: configs[i]!, steps: trajectories[i]!.steps })),
          values.data,
          values.directions,
          parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100,
        )
      : null;
    makeOutputDir(out);
    writeCsv(
      join(out, "trajectory.csv"),
      ["run", "step", "param_norm", "update_norm", "update_cosine_prev", "grad_norm", "grad_cosine_prev"],
      rows.map((r) => [
        r.run,
        r.step,
        r.param_norm,
        cell(r.update_norm),
        cell(r.update_cosine_prev),
        cell(r.grad_norm),
        cell(r.grad_cosine_prev),
      ]),
    );
    writeCsv(
      join(out, "pca.csv"),
      ["run", "step", ...joint.explained.map((_, k) => `pc${k + 1}`)],
      joint.rows.map((r) => [r.run, r.step, ...r.scores]),
    );
    writeCsv(
      join(out, "pca_explained.csv"),
      ["component", "explained_variance_ratio"],
      joint.explained.map((e, k) => [`pc${k + 1}`, e]),
    );
    if (lossRows) {
      writeCsv(
        join(out, "loss_gradients.csv"),
        ["run", "step", "loss_grad_norm", "cosine_with_params", "cosine_with_training_gradient", "cosine_with_direction"],
        lossRows.map((r) => [r.run, r.step, r.norm, cell(r.withParams), cell(r.withTraining), cell(r.withDirection)]),
      );
    }
    process.stdout.write(`${JSON.stringify({ out, runs: runs.length, checkpoints: rows.length, explained: joint.explained })}\n`);
    return 0;
  } finally {
    for (const t of trajectories) disposeTrajectory(t);
  }
}

/** Opens the model, computes the loss gradients of every run's checkpoints (src/analysis/checkpoint-gradients.ts), releases it. */
function lossGradients(
  values: Record<string, string | boolean | undefined>,
  runs: readonly LossGradientRun[],
  data: string,
  directionsFile: string | undefined,
  count: number,
): LossGradientRow[] {
  const model = openModel(values as never);
  const directions = directionsFile ? loadDirection(directionsFile, model.decoder.device) : null;
  try {
    const tokenizer = ChatTokenizer.fromDir(model.dir);
    const subset = lossSubset(tokenizer, readChatDataset(data).examples, { count, seed: 42 });
    const unfollowed = runs.find((run) => !followsMethod(run.config));
    if (unfollowed)
      throw new UsageError(
        "gradients --data follows LoRA and steering runs; for full SFT use the trajectory outputs (without --data) with --params",
      );
    return checkpointLossGradients(model, runs, subset, {
      padId: tokenizer.padTokenId ?? 0,
      directions,
      onProgress: progressReporter("gradients"),
    });
  } finally {
    directions?.dispose();
    model.dispose();
  }
}
