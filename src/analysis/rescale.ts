/**
 * Norm manipulations of learned solutions: rescaling a steering vector or a LoRA adapter (rank 1:
 * scale B; rank > 1: each module's ||BA||_F brought to a common target by scaling B, as docs/study.md
 * §1.6 describes), and the orthogonal norm-preserving perturbation x' = sqrt(1 - eps^2) x + eps y with
 * y orthogonal to x and ||y|| = ||x|| (§1.7). Functions act in place and return restore callbacks.
 */
import type { LoraAdapter } from "../adapters/lora.js";
import { keep, manualSeed, noGrad, randnLike, type Tensor, tidy } from "../tensor/index.js";

/** ||B A||_F of each module of the adapter (without the LoRA scale). */
export function moduleNorms(adapter: LoraAdapter): Map<string, number> {
  const out = new Map<string, number>();
  for (const [module, m] of adapter.modules) out.set(module, tidy(() => m.B.matmul(m.A).norm().toNumber()));
  return out;
}

/** The adapter's reference norm: ||B|| for rank 1, else the mean module ||BA||_F. */
export function adapterNorm(adapter: LoraAdapter): number {
  if (adapter.config.r === 1) {
    const squares = [...adapter.modules.values()].reduce((s, m) => s + tidy(() => m.B.square().sum().toNumber()), 0);
    return Math.sqrt(squares);
  }
  const norms = [...moduleNorms(adapter).values()];
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

/**
 * Rescales the adapter so its reference norm becomes `target`: rank 1 scales every B by
 * target / ||B||; rank > 1 scales each module's B so its ||BA||_F equals target.
 */
export function rescaleAdapter(adapter: LoraAdapter, target: number): void {
  noGrad(() => {
    if (adapter.config.r === 1) {
      const current = adapterNorm(adapter);
      for (const m of adapter.modules.values()) m.B.mul_(current === 0 ? 0 : target / current);
      return;
    }
    for (const [module, norm] of moduleNorms(adapter)) {
      const m = adapter.modules.get(module)!;
      m.B.mul_(norm === 0 ? 0 : target / norm);
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
    return flat.mul(Math.sqrt(1 - eps * eps)).add(y.mul(eps)).reshape(x.shape).to(x.dtype);
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
