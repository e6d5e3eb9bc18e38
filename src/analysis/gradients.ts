/**
 * Gradient analyses: the gradient of a loss (e.g. the narrow dataset's) with respect to a steering
 * vector or LoRA parameters, its cosine with given directions, per-layer and per-module gradient
 * norms, and PCA of checkpoint trajectories (flattened vectors or adapters) with explained variance.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { loadSafetensors } from "../io/safetensors.js";
import type { LoadedModel } from "../models/load.js";
import { causalLmLoss } from "../nn/losses.js";
import { cat, enableGrad, keep, type Tensor, tensor, tidy } from "../tensor/index.js";
import { collate, type Example } from "../train/data.js";

/** d(mean batch loss)/d(params) over `examples`, one kept tensor per parameter (grads are not left on the params). */
export function lossGradient(
  model: LoadedModel,
  params: readonly Tensor[],
  examples: readonly Example[],
  options: { batchSize?: number; padId?: number } = {},
): Tensor[] {
  const batchSize = options.batchSize ?? 4;
  for (const p of params) p.grad = null;
  const batches = Math.ceil(examples.length / batchSize);
  for (let i = 0; i < examples.length; i += batchSize) {
    tidy(() =>
      enableGrad(() => {
        const b = collate(examples.slice(i, i + batchSize), options.padId ?? 0, model.decoder.device);
        causalLmLoss(model.decoder.forward(b.ids, { attentionMask: b.attentionMask }).logits!, b.labels)
          .div(batches)
          .backward();
      }),
    );
  }
  const out = params.map((p) => {
    const g = p.grad;
    return g === null ? keep(tidy(() => p.mul(0))) : keep(g);
  });
  for (const p of params) p.grad = null;
  return out;
}

export function cosine(a: Tensor, b: Tensor): number {
  return tidy(() => {
    const x = a.flatten().to("f64");
    const y = b.flatten().to({ dtype: "f64", device: x.device });
    return x.mul(y).sum().div(x.norm().mul(y.norm()).clamp(1e-300)).toNumber();
  });
}

/** Gradient norms grouped by layer and by module kind, from named gradients (LoRA module or parameter names). */
export function gradientNorms(named: ReadonlyMap<string, Tensor>): {
  byLayer: Record<string, number>;
  byModule: Record<string, number>;
  total: number;
} {
  const byLayer: Record<string, number> = {};
  const byModule: Record<string, number> = {};
  let total = 0;
  for (const [name, g] of named) {
    const sq = tidy(() => g.to("f64").square().sum().toNumber());
    total += sq;
    const layer = /layers\.(\d+)\./.exec(name)?.[1] ?? "other";
    const module = /(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|steering)/.exec(name)?.[1] ?? "other";
    byLayer[layer] = (byLayer[layer] ?? 0) + sq;
    byModule[module] = (byModule[module] ?? 0) + sq;
  }
  const root = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.sqrt(v)]));
  return { byLayer: root(byLayer), byModule: root(byModule), total: Math.sqrt(total) };
}

/** Every checkpoint's trainable tensors flattened into one vector, in step order. */
export function checkpointTrajectory(runDir: string): { steps: number[]; points: Tensor } {
  const root = join(runDir, "checkpoints");
  const dirs = readdirSync(root)
    .filter((d) => /^step-\d+$/.test(d))
    .sort();
  if (dirs.length === 0) throw new RangeError(`${root}: no checkpoints`);
  const rows: Tensor[] = [];
  try {
    for (const d of dirs) {
      const { tensors } = loadSafetensors(join(root, d, "trainable.safetensors"));
      const names = [...tensors.keys()].sort();
      rows.push(
        keep(
          tidy(() =>
            cat(
              names.map((n) => tensors.get(n)!.to("f64").flatten()),
              0,
            ),
          ),
        ),
      );
      for (const t of tensors.values()) t.dispose();
    }
    const points = keep(
      tidy(() =>
        cat(
          rows.map((r) => r.unsqueeze(0)),
          0,
        ),
      ),
    );
    return { steps: dirs.map((d) => Number(d.slice(5))), points };
  } finally {
    for (const r of rows) r.dispose();
  }
}

/**
 * PCA of points [n, dim] by power iteration on the centred Gram matrix (n x n, small for trajectories):
 * the first `components` directions' projections and their explained-variance ratios.
 */
export function pca(points: Tensor, components = 3): { projections: number[][]; explained: number[] } {
  return tidy(() => {
    const x = points.to("f64");
    const centred = x.sub(x.mean(0, true));
    let gram = centred.matmul(centred.mT); // [n, n]
    const n = gram.size(0);
    const totalVariance = centred.square().sum().toNumber();
    const projections: number[][] = [];
    const explained: number[] = [];
    for (let c = 0; c < Math.min(components, n); c++) {
      let v = tensor(Float64Array.from({ length: n }, (_, i) => 1 + i / n));
      let eigen = 0;
      for (let it = 0; it < 500; it++) {
        const next = gram.matmul(v);
        const norm = next.norm().toNumber();
        if (norm === 0) break;
        v = next.div(norm);
        eigen = norm;
      }
      // Scores along the component: u * sqrt(lambda) (u = unit eigenvector of the Gram matrix).
      projections.push(Array.from(v.mul(Math.sqrt(eigen)).toArray() as Float64Array));
      explained.push(totalVariance === 0 ? 0 : eigen / totalVariance);
      gram = gram.sub(v.outer(v).mul(eigen));
    }
    return { projections, explained };
  });
}
