/**
 * AdamW with decoupled weight decay, the same update as torch.optim.AdamW (one fused native call per
 * parameter group and distinct step count, for all its parameters with a gradient). State:
 * per-parameter step, exp_avg, exp_avg_sq.
 */
import { native } from "../native/addon.js";
import { zerosLike, type Tensor } from "../tensor/index.js";
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
import { handleOf } from "../tensor/internal.js";

export interface AdamWOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
  maximize: boolean;
}

const defaults: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, maximize: false };

interface ParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

export class AdamW implements Optimizer<AdamWOptions> {
  readonly groups: ParamGroup<AdamWOptions>[];
  private readonly state = new Map<Tensor, ParamState>();

  constructor(params: readonly Tensor[] | readonly ParamGroupSpec<AdamWOptions>[], options: Partial<AdamWOptions> = {}) {
    this.groups = makeGroups(params, { ...defaults, ...options });
  }

  step(): void {
    for (const group of this.groups) {
      // Parameters are grouped by their step count so one native call serves each distinct step.
      const byStep = new Map<number, { params: Tensor[]; states: ParamState[] }>();
      for (const p of group.params) {
        if (!native.hasGrad(handleOf(p))) continue;
        let s = this.state.get(p);
        if (!s) {
          s = { step: 0, expAvg: longLived(() => zerosLike(p)), expAvgSq: longLived(() => zerosLike(p)) };
          this.state.set(p, s);
        }
        s.step += 1;
        const bucket = byStep.get(s.step) ?? { params: [], states: [] };
        bucket.params.push(p);
        bucket.states.push(s);
        byStep.set(s.step, bucket);
      }
      const { lr, betas, eps, weightDecay, maximize } = group.options;
      for (const [step, bucket] of byStep) {
        native.adamwStep(
          bucket.params.map((p) => handleOf(p)),
          bucket.states.map((s) => handleOf(s.expAvg)),
          bucket.states.map((s) => handleOf(s.expAvgSq)),
          step,
          lr,
          betas[0],
          betas[1],
          eps,
          weightDecay,
          maximize,
        );
      }
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
        const s = this.state.get(p);
        steps.push(s ? s.step : null);
        if (s) {
          tensors[`state.${index}.exp_avg`] = s.expAvg.clone();
          tensors[`state.${index}.exp_avg_sq`] = s.expAvgSq.clone();
        }
        index++;
      }
    }
    return {
      kind: "adamw",
      groups: this.groups.map((g) => ({ options: { ...g.options, betas: [...g.options.betas] }, size: g.params.length })),
      steps,
      tensors,
    };
  }

  loadStateDict(state: OptimizerState): void {
    checkLayout(state, "adamw", this.groups);
    // Build the whole new state first: a bad entry leaves the current state untouched.
    const restored = new Map<Tensor, ParamState>();
    const options: AdamWOptions[] = [];
    try {
      let index = 0;
      state.groups.forEach((saved, g) => {
        const group = this.groups[g]!;
        options.push({ ...group.options, ...(saved.options as Partial<AdamWOptions>) });
        for (const p of group.params) {
          const step = state.steps[index];
          if (step !== null && step !== undefined) {
            const expAvg = state.tensors[`state.${index}.exp_avg`];
            const expAvgSq = state.tensors[`state.${index}.exp_avg_sq`];
            if (!expAvg || !expAvgSq) throw new TypeError(`loadStateDict: missing moments for parameter ${index}`);
            const entry: Partial<ParamState> = { step };
            restored.set(p, entry as ParamState);
            entry.expAvg = restoreFor(p, expAvg, `state.${index}.exp_avg`);
            entry.expAvgSq = restoreFor(p, expAvgSq, `state.${index}.exp_avg_sq`);
          }
          index++;
        }
      });
    } catch (error) {
      for (const s of restored.values()) {
        s.expAvg?.dispose();
        s.expAvgSq?.dispose();
      }
      throw error;
    }
    this.dispose();
    options.forEach((o, g) => {
      this.groups[g]!.options = o;
    });
    for (const [p, s] of restored) this.state.set(p, s);
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
  }
  /** Same as dispose(), for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
