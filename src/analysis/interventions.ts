/**
 * Interventions with a direction: steering (add scale * d at chosen layers, all positions) and ablation
 * (project d-hat out at chosen layers) as scoped hooks, weight-space ablation of LoRA B matrices, and
 * random control vectors of the same norm.
 */
import type { LoraAdapter } from "../adapters/lora.js";
import { addHook, projectOutHook } from "../hooks/interventions.js";
import { layerPoint } from "../hooks/points.js";
import type { HookFn, HookHandle } from "../hooks/registry.js";
import type { Decoder } from "../nn/decoder.js";
import { keep, manualSeed, noGrad, randnLike, type Tensor, tidy } from "../tensor/index.js";

/** The direction for layer l: row l of a [layers, d] tensor, or the vector itself. */
function rowFor(direction: Tensor, layer: number): Tensor {
  return direction.ndim === 2 ? direction.select(0, layer) : direction;
}

/** Registers `make(row)` at each layer; the handle's remove() also frees the row it holds. */
function perLayer(decoder: Decoder, direction: Tensor, layers: readonly number[], make: (row: Tensor) => HookFn): HookHandle[] {
  return layers.map((l) => {
    const row = keep(tidy(() => rowFor(direction, l).share()));
    const handle = decoder.hooks.add(layerPoint(l, "resid_post"), make(row));
    return {
      remove: () => {
        handle.remove();
        row.dispose();
      },
    };
  });
}

/** Adds scale * d (per layer) to the output of each layer in `layers`; remove() every handle to undo. */
export function steer(decoder: Decoder, direction: Tensor, layers: readonly number[], scale: number): HookHandle[] {
  return perLayer(decoder, direction, layers, (row) => addHook(row, scale));
}

/** Projects d-hat (per layer) out of the output of each layer in `layers`. */
export function ablate(decoder: Decoder, direction: Tensor, layers: readonly number[]): HookHandle[] {
  return perLayer(decoder, direction, layers, (row) => projectOutHook(row));
}

/**
 * Removes the d-hat component from the output space of the adapter's modules whose output is the
 * residual stream (o_proj, down_proj) in `layers` (all when omitted): B <- B - d_hat (d_hat^T B).
 */
export function ablateLoraB(adapter: LoraAdapter, direction: Tensor, layers?: readonly number[]): number {
  let changed = 0;
  noGrad(() => {
    for (const [module, m] of adapter.modules) {
      const layer = Number(/^model\.layers\.(\d+)\./.exec(module)?.[1]);
      if (!/\.(o_proj|down_proj)$/.test(module) || (layers && !layers.includes(layer))) continue;
      tidy(() => {
        const d = rowFor(direction, layer).to({ dtype: m.B.dtype, device: m.B.device });
        const unit = d.div(d.norm());
        m.B.sub_(unit.unsqueeze(1).matmul(unit.unsqueeze(0).matmul(m.B)));
      });
      changed++;
    }
  });
  return changed;
}

/** A Gaussian vector with the norm of `v` (seeded). */
export function randomControl(v: Tensor, seed: number): Tensor {
  manualSeed(seed);
  return tidy(() => {
    const r = randnLike(v);
    return r.mul(v.norm().div(r.norm()));
  });
}
