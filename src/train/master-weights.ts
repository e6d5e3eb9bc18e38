/**
 * Float32 master copies for low-precision training (full SFT of a bf16 / f16 model): the optimizer
 * updates the float32 masters from the model's gradients, and the model's weights are refreshed from
 * them after every step, so small updates are not lost to bf16 rounding.
 */
import { keep, noGrad, type Tensor, tidy } from "../tensor/index.js";

export class MasterWeights {
  /** Float32 masters by parameter name (what the optimizer and checkpoints see). */
  readonly masters = new Map<string, Tensor>();

  constructor(private readonly params: ReadonlyMap<string, Tensor>) {
    try {
      noGrad(() => {
        for (const [name, p] of params) this.masters.set(name, keep(tidy(() => p.to({ dtype: "f32" }).detach().clone().requiresGrad_())));
      });
    } catch (error) {
      this.dispose(); // the copies made before the failure (e.g. out of memory half way)
      throw error;
    }
  }

  /** Moves the model's gradients onto the masters (as float32) and clears the model's. */
  pullGradients(): void {
    noGrad(() => {
      for (const [name, p] of this.params) {
        const g = p.grad;
        const master = this.masters.get(name)!;
        if (g === null) {
          master.grad = null;
          continue;
        }
        const wide = g.to("f32");
        master.grad = wide;
        wide.dispose();
        g.dispose();
        p.grad = null;
      }
    });
  }

  /** Writes the masters back into the model's weights (rounded to their dtype). */
  pushWeights(): void {
    noGrad(() => {
      for (const [name, p] of this.params) p.copy_(this.masters.get(name)!);
    });
  }

  dispose(): void {
    for (const m of this.masters.values()) m.dispose();
    this.masters.clear();
  }
  /** Same as dispose(), for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
