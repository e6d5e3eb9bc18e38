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
import { LoraAdapter } from "../adapters/lora.js";
import { loadDirection } from "../analysis/files.js";
import { cosine, lossGradient } from "../analysis/gradients.js";
import { lossSubset } from "../analysis/loss.js";
import { disposeTrajectory, jointPca, type RunTrajectory, readRunTrajectory, trajectoryRows } from "../analysis/trajectories.js";
import { formatCsvRow } from "../eval/csv.js";
import { makeOutputDir, writeOutputFile } from "../io/output.js";
import { loadSafetensors } from "../io/safetensors.js";
import type { LoadedModel } from "../models/load.js";
import { cat, noGrad, type Tensor, tidy } from "../tensor/index.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import type { RunConfig } from "../train/config.js";
import { readChatDataset } from "../train/data.js";
import { SteeringVector } from "../train/steering.js";
import { parseNumber, required, UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

const cell = (v: number | null): string | number => (v === null ? "" : v);
const writeCsv = (file: string, header: string[], rows: (string | number)[][]) => writeOutputFile(file, formatCsvRow(header) + rows.map((r) => formatCsvRow(r)).join(""));

export const gradientsCommand = defineCommand({
  name: "gradients",
  summary: "Trajectories of training runs of any method (norms, local cosines, pre-clipping gradients), one joint PCA, loss gradients.",
  options: {
    ...modelOptions,
    // The model is needed only for --data (loss gradients); the trajectory outputs read checkpoints alone.
    model: { ...modelOptions.model, required: false, description: "the chat model the runs trained on (needed with --data)" },
    run: { type: "string", value: "RUN[,RUN...]", required: true, description: "emlab train run directories (config.resolved.json, checkpoints/)" },
    labels: { type: "string", value: "A[,B...]", description: "names of the runs in the outputs (default: their directories)" },
    out: { type: "string", value: "DIR", required: true, description: "output directory (must not exist): trajectory.csv, pca.csv, pca_explained.csv[, loss_gradients.csv]" },
    params: { type: "string", value: "REGEX", description: "only trainable tensors whose names match" },
    components: { type: "string", value: "K", default: "3", description: "principal components" },
    data: { type: "string", value: "FILE.jsonl", description: "chat dataset whose CE gradient is recomputed at each checkpoint (needs --model)" },
    count: { type: "string", value: "N", default: "100", description: "rows of --data (seeded subset)" },
    directions: { type: "string", value: "FILE", description: "direction file: cosine of steering runs' loss gradients with its row at the run's layer" },
  },
});

export function runGradients(argv: readonly string[]): number {
  const parsed = parseOrHelp(gradientsCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const runs = required("--run", values.run).split(",").map((r) => r.trim()).filter(Boolean);
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
      ? lossGradients(values, runs, labels, configs, trajectories.map((t) => t.steps), values.data, values.directions, parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100)
      : null;
    makeOutputDir(out);
    writeCsv(
      join(out, "trajectory.csv"),
      ["run", "step", "param_norm", "update_norm", "update_cosine_prev", "grad_norm", "grad_cosine_prev"],
      rows.map((r) => [r.run, r.step, r.param_norm, cell(r.update_norm), cell(r.update_cosine_prev), cell(r.grad_norm), cell(r.grad_cosine_prev)]),
    );
    writeCsv(
      join(out, "pca.csv"),
      ["run", "step", ...joint.explained.map((_, k) => `pc${k + 1}`)],
      joint.rows.map((r) => [r.run, r.step, ...r.scores]),
    );
    writeCsv(join(out, "pca_explained.csv"), ["component", "explained_variance_ratio"], joint.explained.map((e, k) => [`pc${k + 1}`, e]));
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

interface LossGradientRow {
  run: string;
  step: number;
  norm: number;
  withParams: number | null;
  withTraining: number | null;
  withDirection: number | null;
}

const nullIfNaN = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** The CE gradient on `data` at every checkpoint of every run (LoRA or steering), with its cosines. */
function lossGradients(
  values: Record<string, string | boolean | undefined>,
  runs: readonly string[],
  labels: readonly string[],
  configs: readonly RunConfig[],
  stepsPerRun: readonly (readonly number[])[],
  data: string,
  directionsFile: string | undefined,
  count: number,
): LossGradientRow[] {
  const model = openModel(values as never);
  const directions = directionsFile ? loadDirection(directionsFile, model.decoder.device) : null;
  const out: LossGradientRow[] = [];
  try {
    const tokenizer = ChatTokenizer.fromDir(model.dir);
    const subset = lossSubset(tokenizer, readChatDataset(data).examples, { count, seed: 42 });
    const progress = progressReporter("gradients");
    runs.forEach((run, r) => {
      const config = configs[r]!;
      const method = attachMethod(model, config);
      try {
        const names = [...method.params.keys()].sort();
        const checkpoints = stepsPerRun[r]!;
        checkpoints.forEach((step, k) => {
          const dir = join(run, "checkpoints", `step-${String(step).padStart(6, "0")}`);
          const { tensors } = loadSafetensors(join(dir, "trainable.safetensors"), { device: model.decoder.device });
          const saved = existsSync(join(dir, "gradients.safetensors")) ? loadSafetensors(join(dir, "gradients.safetensors")).tensors : null;
          try {
            noGrad(() => {
              for (const name of names) {
                const value = tensors.get(name);
                if (!value) throw new RangeError(`${dir}: no trainable ${name}`);
                method.params.get(name)!.copy_(value);
              }
            });
            const grads = lossGradient(model, names.map((n) => method.params.get(n)!), subset, { padId: tokenizer.padTokenId ?? 0 });
            try {
              tidy(() => {
                const g = cat(grads.map((x) => x.to("f64").flatten()), 0);
                const p = cat(names.map((n) => method.params.get(n)!.to("f64").flatten()), 0);
                const training = saved && names.every((n) => saved.has(n)) ? cat(names.map((n) => saved.get(n)!.to("f64").flatten()), 0) : null;
                out.push({
                  run: labels[r]!,
                  step,
                  norm: g.norm().toNumber(),
                  withParams: nullIfNaN(cosine(g, p)),
                  withTraining: training ? nullIfNaN(cosine(g, training)) : null,
                  withDirection:
                    directions && method.steering
                      ? nullIfNaN(cosine(grads[0]!, directions.ndim === 2 ? directions.select(0, method.steering.layer) : directions))
                      : null,
                });
              });
            } finally {
              for (const g of grads) g.dispose();
            }
          } finally {
            for (const t of tensors.values()) t.dispose();
            for (const t of saved?.values() ?? []) t.dispose();
          }
          progress(k + 1, checkpoints.length);
        });
      } finally {
        method.dispose();
      }
    });
    return out;
  } finally {
    directions?.dispose();
    model.dispose();
  }
}

/** The run's trainable method attached to `model`, its tensors named as in the run's checkpoints. */
function attachMethod(model: LoadedModel, config: RunConfig): { params: Map<string, Tensor>; steering: SteeringVector | null; dispose: () => void } {
  const params = new Map<string, Tensor>();
  if (config.method === "steering") {
    const s = config.steering!;
    // Every row steered, as the study's inference code does, whatever the run trained with (steering.rows).
    const sv = SteeringVector.create(model.decoder, s.layer, { site: s.site, alpha: s.alpha });
    const handle = sv.attach(model.decoder);
    params.set("steering.vector", sv.vector);
    return {
      params,
      steering: sv,
      dispose: () => {
        handle.remove();
        sv.dispose();
      },
    };
  }
  if (config.method === "lora") {
    const adapters = config.lora.map((l) =>
      LoraAdapter.create(
        model.spec,
        { r: l.r, alpha: l.alpha, useRslora: l.use_rslora, dropout: 0, targetModules: l.target_modules, layersToTransform: l.layers_to_transform },
        { name: l.name, device: model.decoder.device },
      ),
    );
    for (const adapter of adapters) {
      model.decoder.adapters.attach(adapter);
      for (const [module, m] of adapter.modules) {
        params.set(`${adapter.name}/${module}.lora_A`, m.A);
        params.set(`${adapter.name}/${module}.lora_B`, m.B);
      }
    }
    return {
      params,
      steering: null,
      dispose: () => {
        for (const adapter of adapters) {
          model.decoder.adapters.detach(adapter);
          adapter.dispose();
        }
      },
    };
  }
  throw new UsageError("gradients --data follows LoRA and steering runs; for full SFT use the trajectory outputs (without --data) with --params");
}
