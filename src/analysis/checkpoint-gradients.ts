/**
 * Loss gradients along training runs: at every checkpoint of a LoRA or steering run, the run's
 * trainable tensors are rebuilt from its config, loaded from the checkpoint, and the CE gradient on a
 * fixed subset recomputed, with its cosines (parameters, the gradient the checkpoint saved, a
 * direction). What `emlab gradients --data` writes to loss_gradients.csv.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { LoraAdapter } from "../adapters/lora.js";
import { loadSafetensors } from "../io/safetensors.js";
import type { LoadedModel } from "../models/load.js";
import { cat, noGrad, type Tensor, tidy } from "../tensor/index.js";
import type { RunConfig } from "../train/config.js";
import type { Example } from "../train/data.js";
import { SteeringVector } from "../train/steering.js";
import { cosine, lossGradient } from "./gradients.js";

/** One checkpoint of one run: the loss gradient's norm and its cosines (null where undefined or not asked). */
export interface LossGradientRow {
  run: string;
  step: number;
  norm: number;
  withParams: number | null;
  withTraining: number | null;
  withDirection: number | null;
}

const nullIfNaN = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** The runs whose checkpoints can be followed here (the method's tensors can be rebuilt from the config). */
export const followsMethod = (config: RunConfig): boolean => config.method === "lora" || config.method === "steering";

export interface LossGradientRun {
  dir: string;
  label: string;
  config: RunConfig;
  /** Checkpoint steps to follow. */
  steps: readonly number[];
}

/**
 * The CE gradient on `examples` at every checkpoint of every run (LoRA or steering: see followsMethod),
 * with its cosines with the parameters, the gradient the checkpoint saved and (steering runs, with
 * `directions`) the direction's row at the run's layer. The model is left as it was.
 */
export function checkpointLossGradients(
  model: LoadedModel,
  runs: readonly LossGradientRun[],
  examples: readonly Example[],
  options: { padId: number; directions: Tensor | null; onProgress?: (done: number, total: number) => void },
): LossGradientRow[] {
  const directions = options.directions;
  const out: LossGradientRow[] = [];
  const progress = options.onProgress ?? (() => {});
  runs.forEach(({ dir: run, label, config, steps: checkpoints }) => {
    const method = attachMethod(model, config);
    try {
      const names = [...method.params.keys()].sort();
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
          const grads = lossGradient(
            model,
            names.map((n) => method.params.get(n)!),
            examples,
            { padId: options.padId },
          );
          try {
            tidy(() => {
              const g = cat(
                grads.map((x) => x.to("f64").flatten()),
                0,
              );
              const p = cat(
                names.map((n) => method.params.get(n)!.to("f64").flatten()),
                0,
              );
              const training =
                saved && names.every((n) => saved.has(n))
                  ? cat(
                      names.map((n) => saved.get(n)!.to("f64").flatten()),
                      0,
                    )
                  : null;
              out.push({
                run: label,
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
}

/** The run's trainable method attached to `model`, its tensors named as in the run's checkpoints. */
function attachMethod(
  model: LoadedModel,
  config: RunConfig,
): { params: Map<string, Tensor>; steering: SteeringVector | null; dispose: () => void } {
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
        {
          r: l.r,
          alpha: l.alpha,
          useRslora: l.use_rslora,
          dropout: 0,
          targetModules: l.target_modules,
          layersToTransform: l.layers_to_transform,
        },
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
  throw new RangeError(`${config.method} runs cannot be followed here: only LoRA and steering runs (see followsMethod)`);
}
