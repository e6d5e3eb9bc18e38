/**
 * Interventions with a direction: steering (add scale * d at chosen layers, all positions) and ablation
 * (project d-hat out at chosen layers) as scoped hooks, in two forms (docs/study.md §3): one shared
 * row (the study's: the layer-24 direction at every chosen layer) or each layer's own row (ours);
 * weight-space ablation of LoRA B matrices (the study's by default: down_proj only, one direction row,
 * B renormalised to its original Frobenius norm; our variants as options); random control vectors.
 */
import type { LoraAdapter } from "../adapters/lora.js";
import { addHook, projectOutHook } from "../hooks/interventions.js";
import { layerPoint } from "../hooks/points.js";
import type { HookFn, HookHandle } from "../hooks/registry.js";
import type { Decoder } from "../nn/decoder.js";
import { keep, manualSeed, noGrad, randn, randnLike, type Tensor, tidy } from "../tensor/index.js";

/**
 * Which row of a [layers, d] direction an intervention at layer l uses: `{ shared: L }` takes row L
 * at every layer (the study's form); "per-layer" takes row l (ours). A 1-D direction is used as is.
 */
export type DirectionRows = "per-layer" | { shared: number };

/** The direction for layer l under `rows`. */
export function rowFor(direction: Tensor, layer: number, rows: DirectionRows = "per-layer"): Tensor {
  if (direction.ndim !== 2) return direction;
  const row = rows === "per-layer" ? layer : rows.shared;
  if (!Number.isInteger(row) || row < 0 || row >= direction.size(0))
    throw new RangeError(`direction row ${row} outside 0..${direction.size(0) - 1}`);
  return direction.select(0, row);
}

/**
 * Registers `make(row)` at each layer; the handle's remove() also frees the row it holds. When one
 * layer fails (a layer or row out of range) the hooks and rows already made are undone.
 */
function perLayer(
  decoder: Decoder,
  direction: Tensor,
  layers: readonly number[],
  rows: DirectionRows,
  make: (row: Tensor) => HookFn,
): HookHandle[] {
  const handles: HookHandle[] = [];
  try {
    for (const l of layers) {
      const row = keep(tidy(() => rowFor(direction, l, rows).share()));
      let hook: HookHandle;
      try {
        hook = decoder.hooks.add(layerPoint(l, "resid_post"), make(row));
      } catch (error) {
        row.dispose();
        throw error;
      }
      const remove = (): void => {
        hook.remove();
        row.dispose();
      };
      handles.push({ remove, [Symbol.dispose]: remove });
    }
  } catch (error) {
    for (const handle of handles) handle.remove();
    throw error;
  }
  return handles;
}

/** Adds scale * d to the output of each layer in `layers` (d per `rows`); remove() every handle to undo. */
export function steer(
  decoder: Decoder,
  direction: Tensor,
  layers: readonly number[],
  scale: number,
  rows: DirectionRows = "per-layer",
): HookHandle[] {
  return perLayer(decoder, direction, layers, rows, (row) => addHook(row, scale));
}

/** Projects d-hat out of the output of each layer in `layers` (d per `rows`). */
export function ablate(decoder: Decoder, direction: Tensor, layers: readonly number[], rows: DirectionRows = "per-layer"): HookHandle[] {
  return perLayer(decoder, direction, layers, rows, (row) => projectOutHook(row));
}

export interface LoraBAblationOptions {
  /** Layers whose modules are changed (all when omitted). */
  layers?: readonly number[];
  /** Direction row per layer; the study: `{ shared: 24 }`. Default "per-layer" for a [layers, d] direction. */
  rows?: DirectionRows;
  /** Module kinds changed; the study: ["down_proj"] (default); ours also "o_proj". */
  modules?: readonly ("down_proj" | "o_proj")[];
  /** Rescale each changed B back to its original Frobenius norm (the study: true, default). */
  renormalise?: boolean;
}

/**
 * Removes the d-hat component from the output space of the solution's B matrices:
 * B <- B - d_hat (d_hat^T B), then (renormalise) B <- B * ||B_before||_F / ||B_after||_F.
 * Defaults follow the study's load_lora_with_vec_ablated. Returns the number of modules changed.
 */
export function ablateLoraB(adapters: LoraAdapter | readonly LoraAdapter[], direction: Tensor, o: LoraBAblationOptions = {}): number {
  const kinds = o.modules ?? ["down_proj"];
  const list = adapters instanceof Array ? adapters : [adapters as LoraAdapter];
  let changed = 0;
  noGrad(() => {
    for (const adapter of list) {
      for (const [module, m] of adapter.modules) {
        const layer = Number(/^model\.layers\.(\d+)\./.exec(module)?.[1]);
        const kind = /\.(o_proj|down_proj)$/.exec(module)?.[1] as "o_proj" | "down_proj" | undefined;
        if (!kind || !kinds.includes(kind) || (o.layers && !o.layers.includes(layer))) continue;
        tidy(() => {
          const d = rowFor(direction, layer, o.rows ?? "per-layer").to({ dtype: m.B.dtype, device: m.B.device });
          const unit = d.div(d.norm());
          const before = m.B.norm();
          m.B.sub_(unit.unsqueeze(1).matmul(unit.unsqueeze(0).matmul(m.B)));
          if (o.renormalise ?? true) {
            const after = m.B.norm().toNumber();
            if (after > 0) m.B.mul_(before.div(after));
          }
        });
        changed++;
      }
    }
  });
  return changed;
}

/** Ours: a Gaussian vector with the norm of `v` (seeded). */
export function randomControl(v: Tensor, seed: number): Tensor {
  manualSeed(seed);
  return tidy(() => {
    const r = randnLike(v);
    return r.mul(v.norm().div(r.norm()));
  });
}

/**
 * The study's steering control (activation_steering.py): randn_like(v) * ||v||, whose norm is about
 * sqrt(d) * ||v||, not ||v|| (seeded).
 */
export function studySteeringControl(v: Tensor, seed: number): Tensor {
  manualSeed(seed);
  return tidy(() => randnLike(v).mul(v.norm()));
}

/**
 * The study's significance controls (steering_vector_kl_experiment.py): torch.manual_seed(seed), then
 * `count` draws of randn(d) each divided by its norm, in order. Float32 on the CPU, like the study's.
 */
export function studyUnitRandomVectors(d: number, count: number, seed = 42): Tensor[] {
  manualSeed(seed);
  return Array.from({ length: count }, () =>
    keep(
      tidy(() => {
        const r = randn([d]);
        return r.div(r.norm());
      }),
    ),
  );
}
