/**
 * SGD with momentum, dampening, Nesterov and (coupled) weight decay: torch.optim.SGD's update,
 * one fused native call per group per step. State: a momentum buffer per parameter.
 */
import { native } from "../native/addon.js";
import { Tensor } from "../tensor/index.js";
import {
  checkLayout,
  longLived,
  restoreFor,
  makeGroups,
  type Optimizer,
  type OptimizerState,
  type ParamGroup,
  type ParamGroupSpec,
  zeroGrads,
} from "./optimizer.js";
import { handleOf, handleOrNull } from "../tensor/internal.js";

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

const defaults: SGDOptions = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

export class SGD implements Optimizer<SGDOptions> {
  readonly groups: ParamGroup<SGDOptions>[];
  private readonly buffers = new Map<Tensor, Tensor>();

  constructor(params: readonly Tensor[] | readonly ParamGroupSpec<SGDOptions>[], options: Partial<SGDOptions> = {}) {
    this.groups = makeGroups(params, { ...defaults, ...options });
    for (const g of this.groups) {
      if (g.options.nesterov && (g.options.momentum <= 0 || g.options.dampening !== 0)) {
        throw new TypeError("SGD: Nesterov momentum requires momentum > 0 and dampening = 0");
      }
    }
  }

  step(): void {
    for (const group of this.groups) {
      const { lr, momentum, dampening, weightDecay, nesterov, maximize } = group.options;
      const created = native.sgdStep(
        group.params.map((p) => handleOf(p)),
        group.params.map((p) => handleOrNull(this.buffers.get(p))),
        lr,
        momentum,
        dampening,
        weightDecay,
        nesterov,
        maximize,
      );
      created.forEach((handle, i) => {
        if (handle !== null)
          this.buffers.set(
            group.params[i]!,
            longLived(() => new Tensor(handle)),
          );
      });
    }
  }

  zeroGrad(): void {
    zeroGrads(this.groups);
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    const steps: (number | null)[] = [];
    let index = 0;
    for (const group of this.groups) {
      for (const p of group.params) {
        const buffer = this.buffers.get(p);
        steps.push(buffer ? 1 : null);
        if (buffer) tensors[`state.${index}.momentum_buffer`] = buffer.clone();
        index++;
      }
    }
    return { kind: "sgd", groups: this.groups.map((g) => ({ options: { ...g.options }, size: g.params.length })), steps, tensors };
  }

  loadStateDict(state: OptimizerState): void {
    checkLayout(state, "sgd", this.groups);
    // Build the whole new state first: a bad entry leaves the current state untouched.
    const restored = new Map<Tensor, Tensor>();
    const options: SGDOptions[] = [];
    try {
      let index = 0;
      state.groups.forEach((saved, g) => {
        const group = this.groups[g]!;
        options.push({ ...group.options, ...(saved.options as Partial<SGDOptions>) });
        for (const p of group.params) {
          const buffer = state.tensors[`state.${index}.momentum_buffer`];
          if (buffer) restored.set(p, restoreFor(p, buffer, `state.${index}.momentum_buffer`));
          index++;
        }
      });
    } catch (error) {
      for (const b of restored.values()) b.dispose();
      throw error;
    }
    this.dispose();
    options.forEach((o, g) => {
      this.groups[g]!.options = o;
    });
    for (const [p, b] of restored) this.buffers.set(p, b);
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
  /** Same as dispose(), for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
