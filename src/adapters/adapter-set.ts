/**
 * The adapters attached to a decoder (its injected ProjectionSource): the decoder routes every linear projection through `linear`,
 * which adds the active LoRA adapters' contributions for that module. With none attached it is a
 * plain linear. `withoutAdapters` switches them off inside a scope (the frozen reference model for
 * KL terms, without a second copy of the weights).
 */
import type { BaseProduct, ProjectionSource } from "../nn/projections.js";
import { dropout, linear, type Tensor } from "../tensor/index.js";
import type { LoraAdapter } from "./lora.js";

export class AdapterSet implements ProjectionSource {
  private readonly adapters: LoraAdapter[] = [];
  private disabledDepth = 0;
  /** Set while training: LoRA dropout only applies then. */
  training = false;

  get size(): number {
    return this.adapters.length;
  }

  get list(): readonly LoraAdapter[] {
    return this.adapters;
  }

  /** True when some adapter contributes to forward passes right now. */
  get active(): boolean {
    return this.disabledDepth === 0 && this.adapters.some((a) => a.enabled && !a.merged);
  }

  attach(adapter: LoraAdapter): void {
    if (this.adapters.some((a) => a.name === adapter.name)) throw new RangeError(`an adapter named ${adapter.name} is already attached`);
    this.adapters.push(adapter);
  }

  detach(adapter: LoraAdapter): void {
    const i = this.adapters.indexOf(adapter);
    if (i >= 0) this.adapters.splice(i, 1);
  }

  /** Runs `fn` with every adapter switched off (restored on exit, also on throw). */
  withoutAdapters<T>(fn: () => T): T {
    this.disabledDepth++;
    try {
      return fn();
    } finally {
      this.disabledDepth--;
    }
  }

  /** x W^T + b (through `base`, default linear) plus, for each active adapter on `module`, s * (dropout(x) A^T) B^T. */
  linear(module: string, x: Tensor, weight: Tensor, bias: Tensor | null, base: BaseProduct = linear): Tensor {
    let out = base(x, weight, bias);
    if (this.disabledDepth > 0) return out;
    for (const adapter of this.adapters) {
      if (!adapter.enabled || adapter.merged) continue;
      const m = adapter.modules.get(module);
      if (!m) continue;
      const p = adapter.config.dropout ?? 0;
      const input = (this.training && p > 0 ? dropout(x, p, true) : x).to(m.A.dtype);
      out = out.add(linear(linear(input, m.A), m.B).mul(adapter.scale).to(out.dtype));
    }
    return out;
  }
}
