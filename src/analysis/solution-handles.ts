/**
 * Opening the learned solution an analysis works on, for the efficiency / stability / compare-norms
 * commands and programs like them: a steering vector file (attached for the analysis) or the LoRA
 * adapters already attached to the model, with the tensors the analysis perturbs, a way to switch the
 * solution off, and `close()` that undoes the attachment and frees what was loaded here.
 */
import { loadPeftAdapters } from "../adapters/adapter-dirs.js";
import type { LoraAdapter } from "../adapters/lora.js";
import type { LoadedModel } from "../models/load.js";
import { type Tensor, tidy } from "../tensor/index.js";
import type { SteeringVector } from "../train/steering.js";
import { loadSteeringVector } from "../train/steering-file.js";
import { type NormSolution, withAdapterNorm, withSteeringNorm } from "./experiments.js";
import { adapterNorm, type RescaleMode } from "./rescale.js";

export interface OpenSolution {
  kind: "steering" | "adapter";
  steering: SteeringVector | null;
  adapters: LoraAdapter[];
  /** What the stability analysis perturbs: the vector, or every adapter's A and B. */
  tensors: Tensor[];
  /** Runs `fn` with the solution switched off. */
  off<T>(fn: () => T): T;
  close(): void;
}

/** The steering vector in `file` attached to the model (layer from the file unless `layer` is given). */
export function openSteeringSolution(model: LoadedModel, file: string, layer: number | undefined): OpenSolution {
  const sv = loadSteeringVector(file, model.decoder, { layer });
  const handle = sv.attach(model.decoder);
  return {
    kind: "steering",
    steering: sv,
    adapters: [],
    tensors: [sv.vector],
    off: (fn) => sv.withoutSteering(fn),
    close: () => (handle.remove(), sv.dispose()),
  };
}

/** The adapters attached to the model, acting as one solution (null when none is attached). */
export function attachedAdapterSolution(model: LoadedModel): OpenSolution | null {
  const adapters = [...model.decoder.adapters.list];
  if (adapters.length === 0) return null;
  return {
    kind: "adapter",
    steering: null,
    adapters,
    tensors: adapters.flatMap((a) => a.parameters()),
    off: (fn) => model.decoder.adapters.withoutAdapters(fn),
    close: () => {},
  };
}

/** A solution of compare-norms: a vector file (by extension) or an adapter spec; attached only inside `at`. */
export function openNormSolution(
  spec: string,
  model: LoadedModel,
  layer: number | undefined,
  mode: RescaleMode,
): NormSolution & { close(): void } {
  if (/\.(pt|pth|safetensors)$/i.test(spec)) {
    const sv = loadSteeringVector(spec, model.decoder, { layer });
    return {
      norm: tidy(() => sv.vector.norm().toNumber()),
      at: (target, fn) => {
        const handle = sv.attach(model.decoder);
        try {
          return withSteeringNorm(sv, target, fn);
        } finally {
          handle.remove();
        }
      },
      close: () => sv.dispose(),
    };
  }
  const adapters = loadPeftAdapters(spec, model);
  return {
    norm: adapterNorm(adapters, mode),
    at: (target, fn) => {
      for (const a of adapters) model.decoder.adapters.attach(a);
      try {
        return withAdapterNorm(adapters, target, mode, fn);
      } finally {
        for (const a of adapters) model.decoder.adapters.detach(a);
      }
    },
    close: () => adapters.forEach((a) => a.dispose()),
  };
}
