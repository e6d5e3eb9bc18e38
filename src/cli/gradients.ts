/**
 * `emlab gradients --run RUN[,RUN...] --out DIR [--labels a,b] [--params REGEX] [--components 3]
 *  [--model CHAT --data NARROW.jsonl [--directions FILE] [--count 100]]`
 *
 * Gradient and trajectory analyses of training runs of any method (LoRA, steering, full SFT with
 * --params), run as trajectoriesProgram (src/effect/trajectory-program.ts) and, with --data,
 * lossGradientsProgram under the model layer. Writes DIR (which must not exist) as a whole once
 * everything is computed (built beside it and renamed into place: an interrupted run leaves no DIR):
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
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { Effect } from "effect";
import { lossSubset } from "../analysis/loss.js";
import { lossGradientsProgram } from "../effect/analysis-programs.js";
import { boundary } from "../effect/errors.js";
import { ModelService } from "../effect/services.js";
import { trajectoriesProgram } from "../effect/trajectory-program.js";
import { makeOutputDir, writeOutputDir } from "../io/output.js";
import { readChatDataset } from "../train/data.js";
import { parseNumber, required, UsageError } from "./args.js";
import { modelLayer, writeCsv, writeOutputs } from "./analysis-options.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";
import { runInterruptible } from "./runtime.js";

const cell = (v: number | null): string | number => (v === null ? "" : v);

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

export function runGradients(argv: readonly string[]): Promise<number> | number {
  const parsed = parseOrHelp(gradientsCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const dirs = required("--run", values.run)
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  if (dirs.length === 0) throw new UsageError("--run: give at least one run directory");
  const labels = values.labels ? values.labels.split(",").map((l) => l.trim()) : dirs;
  if (labels.length !== dirs.length) throw new UsageError(`--labels: ${labels.length} labels for ${dirs.length} runs`);
  const out = required("--out", values.out);
  if (existsSync(out)) throw new UsageError(`${out} exists; choose a new --out directory`);
  let filter: RegExp | null = null;
  try {
    filter = values.params ? new RegExp(values.params) : null;
  } catch (error) {
    throw new UsageError(`--params: ${(error as Error).message}`);
  }
  const components = parseNumber("--components", values.components, { integer: true, min: 1 }) ?? 3;
  const data = values.data;
  if (data && !values.model) throw new UsageError("--data needs --model (the chat model the runs trained on)");
  if (values.directions && !data) throw new UsageError("--directions applies to the loss gradients of --data");
  for (const run of dirs)
    if (!existsSync(join(run, "config.resolved.json"))) throw new UsageError(`${run}: no config.resolved.json (is it an emlab train run?)`);
  const count = parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100;
  const runs = dirs.map((dir, i) => ({ dir, label: labels[i]! }));
  const model = data ? modelLayer(values) : null;

  const program = Effect.gen(function* () {
    const trajectories = yield* trajectoriesProgram({ runs, filter, components });
    // The loss gradients (with --data) under the model, released before anything is written.
    const lossRows =
      data && model
        ? yield* Effect.scoped(
            Effect.gen(function* () {
              const { tokenizer } = yield* ModelService;
              const examples = yield* boundary(() => lossSubset(tokenizer, readChatDataset(data).examples, { count, seed: 42 }));
              return yield* lossGradientsProgram({
                runs: runs.map((run, i) => ({ ...run, steps: trajectories.steps[i] })),
                examples,
                directions: values.directions,
                onProgress: progressReporter("gradients"),
              });
            }),
          ).pipe(Effect.provide(model))
        : null;
    const { rows, pca } = trajectories;
    return yield* writeOutputs(() => {
      makeOutputDir(dirname(out));
      writeOutputDir(out, (dir) => {
        writeCsv(
          join(dir, "trajectory.csv"),
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
          join(dir, "pca.csv"),
          ["run", "step", ...pca.explained.map((_, k) => `pc${k + 1}`)],
          pca.rows.map((r) => [r.run, r.step, ...r.scores]),
        );
        writeCsv(
          join(dir, "pca_explained.csv"),
          ["component", "explained_variance_ratio"],
          pca.explained.map((e, k) => [`pc${k + 1}`, e]),
        );
        if (lossRows)
          writeCsv(
            join(dir, "loss_gradients.csv"),
            ["run", "step", "loss_grad_norm", "cosine_with_params", "cosine_with_training_gradient", "cosine_with_direction"],
            lossRows.map((r) => [r.run, r.step, r.norm, cell(r.withParams), cell(r.withTraining), cell(r.withDirection)]),
          );
      });
      process.stdout.write(`${JSON.stringify({ out, runs: runs.length, checkpoints: rows.length, explained: pca.explained })}\n`);
    });
  });
  return runInterruptible(Effect.scoped(program));
}
