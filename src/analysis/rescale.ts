/**
 * Norm manipulations of learned solutions: rescaling a steering vector or a LoRA solution (one adapter
 * or several as one) with our semantics or the study's (RescaleMode, docs/study.md §1.6), and the
 * orthogonal norm-preserving perturbation x' = sqrt(1 - eps^2) x + eps y with
 * y orthogonal to x and ||y|| = ||x|| (§1.7). Functions act in place and return restore callbacks.
 */
import type { LoraAdapter } from "../adapters/lora.js";
import { keep, manualSeed, noGrad, randnLike, type Tensor, tidy } from "../tensor/index.js";

/** One adapter or several treated as one solution (e.g. nine rank-1 adapters). */
export type AdapterSolution = LoraAdapter | readonly LoraAdapter[];

const listOf = (a: AdapterSolution): readonly LoraAdapter[] => (a instanceof Array ? a : [a as LoraAdapter]);

/**
 * How an adapter's norm is read and set (docs/study.md §1.6, §3):
 * - "ours": rank 1 (every adapter): the norm is ||B|| over all modules and rescaling multiplies every B
 *   by one factor (relative module norms kept); rank > 1: as the study's.
 * - "study": the norm is the mean module ||BA||_F; rank > 1 sets each module's ||BA||_F to the target
 *   ('effective'), rank 1 sets each module's ||B|| to the target ('matrix', stability/utils.py).
 */
export type RescaleMode = "ours" | "study";

/** ||B A||_F of each module (without the LoRA scale); keys are module names, prefixed `adapter/` when several adapters are given. */
export function moduleNorms(adapters: AdapterSolution): Map<string, number> {
  const list = listOf(adapters);
  const out = new Map<string, number>();
  for (const adapter of list) {
    for (const [module, m] of adapter.modules)
      out.set(
        list.length > 1 ? `${adapter.name}/${module}` : module,
        tidy(() => m.B.matmul(m.A).norm().toNumber()),
      );
  }
  return out;
}

const allRank1 = (list: readonly LoraAdapter[]) => list.every((a) => a.config.r === 1);

/** The solution's reference norm under `mode` (see RescaleMode). */
export function adapterNorm(adapters: AdapterSolution, mode: RescaleMode = "ours"): number {
  const list = listOf(adapters);
  if (mode === "ours" && allRank1(list)) {
    const squares = list.flatMap((a) => [...a.modules.values()]).reduce((s, m) => s + tidy(() => m.B.square().sum().toNumber()), 0);
    return Math.sqrt(squares);
  }
  const norms = [...moduleNorms(list).values()];
  return norms.reduce((a, b) => a + b, 0) / norms.length;
}

/** Snapshots tensors so they can be restored after an in-place change. */
export function snapshot(tensors: readonly Tensor[]): () => void {
  const copies = tensors.map((t) => keep(tidy(() => t.detach().clone())));
  return () => {
    noGrad(() => tensors.forEach((t, i) => t.copy_(copies[i]!)));
    for (const c of copies) c.dispose();
  };
}

/** Every B matrix of the solution (what rescaling changes). */
export const bMatrices = (adapters: AdapterSolution): Tensor[] => listOf(adapters).flatMap((a) => [...a.modules.values()].map((m) => m.B));

/**
 * Rescales the solution so its norm under `mode` becomes `target`: "ours" rank 1 multiplies every B by
 * target / ||B||; otherwise each module's B is scaled so its ||BA||_F (rank > 1, or "ours") or, with
 * "study" and rank 1, its ||B|| equals target.
 */
export function rescaleAdapter(adapters: AdapterSolution, target: number, mode: RescaleMode = "ours"): void {
  const list = listOf(adapters);
  noGrad(() => {
    if (mode === "ours" && allRank1(list)) {
      const current = adapterNorm(list, "ours");
      for (const B of bMatrices(list)) B.mul_(current === 0 ? 0 : target / current);
      return;
    }
    for (const adapter of list) {
      for (const m of adapter.modules.values()) {
        const norm = tidy(() => (mode === "study" && adapter.config.r === 1 ? m.B.norm() : m.B.matmul(m.A).norm()).toNumber());
        m.B.mul_(norm === 0 ? 0 : target / norm);
      }
    }
  });
}

/** x' = sqrt(1 - eps^2) x + eps y, y ~ N(0, I) made orthogonal to x and of norm ||x|| (seeded). */
export function orthogonalPerturbation(x: Tensor, eps: number, seed: number): Tensor {
  if (!(eps >= 0 && eps <= 1)) throw new RangeError(`eps must be in [0, 1], got ${eps}`);
  manualSeed(seed);
  return tidy(() => {
    const flat = x.detach().flatten().to("f64");
    const noise = randnLike(flat);
    const unit = flat.div(flat.norm().clamp(1e-30));
    const orthogonal = noise.sub(unit.mul(noise.mul(unit).sum()));
    const y = orthogonal.mul(flat.norm().div(orthogonal.norm().clamp(1e-30)));
    return flat
      .mul(Math.sqrt(1 - eps * eps))
      .add(y.mul(eps))
      .reshape(x.shape)
      .to(x.dtype);
  });
}

/** Applies orthogonalPerturbation to each tensor in place (different seeds per tensor). */
export function perturbInPlace(tensors: readonly Tensor[], eps: number, seed: number): void {
  noGrad(() =>
    tensors.forEach((t, i) =>
      tidy(() => {
        t.copy_(orthogonalPerturbation(t, eps, seed * 1000 + i));
      }),
    ),
  );
}
