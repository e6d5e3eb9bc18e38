// Covers src/optim/adamw.ts: the update against torch.optim.AdamW's formula recomputed in float64 JS (decoupled
// weight decay, bias correction, maximize, defaults), skipping parameters without grad, param groups and lr changes,
// zeroGrad, exact resume through stateDict/loadStateDict (also via safetensors), layout checks, and freeing state.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { AdamW, type AdamWOptions, type OptimizerState, SGD } from "../../src/optim/index.js";
import { liveTensorCount, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { backwardQuadratic, bytes, gradOf, param, read, useOwnedParams } from "../helpers/params.js";
import { expectClose } from "../helpers/numeric.js";

useLeakCheck();
// Registered after the leak check so that it runs before it (vitest runs afterEach hooks in reverse).
useOwnedParams();

// ---- the reference, in float64 JS --------------------------------------------------------------

interface Hyper {
  lr: number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
  maximize?: boolean;
}

class RefAdamW {
  m: number[];
  v: number[];
  t = 0;
  constructor(public p: number[]) {
    this.m = p.map(() => 0);
    this.v = p.map(() => 0);
  }
  /** Gradient of sum(c * p^2) at the current p. */
  quadraticGrad(c: readonly number[]): number[] {
    return this.p.map((x, i) => 2 * c[i]! * x);
  }
  step(grad: readonly number[], h: Hyper): void {
    this.t += 1;
    const { lr, b1, b2, eps, wd } = h;
    for (let i = 0; i < this.p.length; i++) {
      const g = h.maximize ? -grad[i]! : grad[i]!;
      let p = this.p[i]! * (1 - lr * wd);
      this.m[i] = b1 * this.m[i]! + (1 - b1) * g;
      this.v[i] = b2 * this.v[i]! + (1 - b2) * g * g;
      p -= ((lr / (1 - b1 ** this.t)) * this.m[i]!) / (Math.sqrt(this.v[i]!) / Math.sqrt(1 - b2 ** this.t) + eps);
      this.p[i] = p;
    }
  }
}

const hyper: Hyper = { lr: 0.05, b1: 0.8, b2: 0.95, eps: 1e-3, wd: 0.1 };
const options = (h: Hyper): Partial<AdamWOptions> => ({
  lr: h.lr,
  betas: [h.b1, h.b2],
  eps: h.eps,
  weightDecay: h.wd,
  maximize: h.maximize ?? false,
});

const A0 = [0.9, -1.3, 0.4, 2.1];
const CA = [0.5, 1.5, -0.25, 0.75];
const B0 = [-0.6, 1.1, 0.05];
const CB = [2, 0.3, 1.2];

/** Runs `steps` quadratic-loss steps on the optimizer and the references side by side, comparing each. */
function runBoth(opt: AdamW, pairs: { p: Tensor; ref: RefAdamW; c: readonly number[]; h: Hyper }[], steps: number): void {
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    for (const { p, ref, c, h } of pairs) {
      backwardQuadratic(p, c);
      ref.step(ref.quadraticGrad(c), h);
    }
    opt.step();
    for (const { p, ref } of pairs) expectClose(read(p), ref.p, 1e-12);
  }
}

describe("AdamW update", () => {
  test("the backward of the test loss is 2 c p", () => {
    const a = param(A0, [2, 2]);
    backwardQuadratic(a, CA);
    expect(gradOf(a)).toEqual(A0.map((x, i) => 2 * CA[i]! * x));
  });

  test("matches the decoupled-weight-decay formula over several steps (non-default betas, eps, weightDecay)", () => {
    const a = param(A0, [2, 2]);
    const b = param(B0);
    const opt = new AdamW([a, b], options(hyper));
    runBoth(
      opt,
      [
        { p: a, ref: new RefAdamW([...A0]), c: CA, h: hyper },
        { p: b, ref: new RefAdamW([...B0]), c: CB, h: hyper },
      ],
      6,
    );
    // The parameters moved well away from where they started.
    expect(Math.max(...read(a).map((x, i) => Math.abs(x - A0[i]!)))).toBeGreaterThan(0.1);
    expect(a.shape).toEqual([2, 2]);
    expect(a.dtype).toBe("f64");
    opt.dispose();
  });

  test("weight decay is decoupled: with a zero gradient the parameter only shrinks by 1 - lr*wd", () => {
    const a = param(A0);
    const opt = new AdamW([a], options(hyper));
    tidy(() => {
      a.grad = tensor(new Float64Array(A0.length));
    });
    opt.step();
    expectClose(
      read(a),
      A0.map((x) => x * (1 - hyper.lr * hyper.wd)),
      1e-15,
    );
    opt.dispose();
  });

  test("defaults are torch's (lr 1e-3, betas 0.9/0.999, eps 1e-8, weightDecay 0.01, minimize)", () => {
    const a = param(A0);
    const opt = new AdamW([a]);
    runBoth(opt, [{ p: a, ref: new RefAdamW([...A0]), c: CA, h: { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 } }], 3);
    opt.dispose();
  });

  test("maximize ascends the loss with the same formula on -g", () => {
    const h = { ...hyper, maximize: true };
    const a = param(A0);
    const opt = new AdamW([a], options(h));
    const ref = new RefAdamW([...A0]);
    runBoth(opt, [{ p: a, ref, c: CA, h }], 4);
    // Ascending sum(c p^2): entries with positive c grow in magnitude.
    expect(Math.abs(read(a)[0]!)).toBeGreaterThan(Math.abs(A0[0]!));
    opt.dispose();
  });
});

describe("parameters and groups", () => {
  test("parameters without grad are skipped and their step count does not advance", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new AdamW([a, b], options(hyper));
    const refA = new RefAdamW([...A0]);
    const refB = new RefAdamW([...B0]);

    // Step 1: only a has a gradient; b stays exactly as it was (not even weight decay).
    backwardQuadratic(a, CA);
    refA.step(refA.quadraticGrad(CA), hyper);
    opt.step();
    expectClose(read(a), refA.p, 1e-12);
    expect(read(b)).toEqual(B0);
    const first = opt.stateDict();
    expect(first.steps).toEqual([1, null]);
    expect(Object.keys(first.tensors).sort()).toEqual(["state.0.exp_avg", "state.0.exp_avg_sq"]);
    for (const t of Object.values(first.tensors)) t.dispose();

    // Step 2: both; b takes its first step (bias correction with t = 1), a its second.
    opt.zeroGrad();
    backwardQuadratic(a, CA);
    backwardQuadratic(b, CB);
    refA.step(refA.quadraticGrad(CA), hyper);
    refB.step(refB.quadraticGrad(CB), hyper);
    opt.step();
    expectClose(read(a), refA.p, 1e-12);
    expectClose(read(b), refB.p, 1e-12);
    const second = opt.stateDict();
    expect(second.steps).toEqual([2, 1]);
    for (const t of Object.values(second.tensors)) t.dispose();
    opt.dispose();
  });

  test("param groups use their own lr and overrides, inheriting the rest", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new AdamW(
      [
        { params: [a], options: { lr: 0.1 } },
        { params: [b], options: { lr: 0.01, weightDecay: 0 } },
      ],
      options(hyper),
    );
    expect(opt.groups.map((g) => g.options.lr)).toEqual([0.1, 0.01]);
    expect(opt.groups.map((g) => g.options.weightDecay)).toEqual([hyper.wd, 0]);
    expect(opt.groups[1]!.options.betas).toEqual([hyper.b1, hyper.b2]);
    runBoth(
      opt,
      [
        { p: a, ref: new RefAdamW([...A0]), c: CA, h: { ...hyper, lr: 0.1 } },
        { p: b, ref: new RefAdamW([...B0]), c: CB, h: { ...hyper, lr: 0.01, wd: 0 } },
      ],
      4,
    );
    opt.dispose();
  });

  test("changing group.options.lr between steps takes effect", () => {
    const a = param(A0);
    const opt = new AdamW([a], options(hyper));
    const ref = new RefAdamW([...A0]);
    for (const lr of [0.1, 0.02, 0.3, 0.05]) {
      opt.groups[0]!.options.lr = lr;
      opt.zeroGrad();
      backwardQuadratic(a, CA);
      ref.step(ref.quadraticGrad(CA), { ...hyper, lr });
      opt.step();
      expectClose(read(a), ref.p, 1e-12);
    }
    // lr = 0 freezes the parameter exactly (no decay, no update), though moments still advance.
    opt.groups[0]!.options.lr = 0;
    const before = bytes(a);
    opt.zeroGrad();
    backwardQuadratic(a, CA);
    opt.step();
    expect(bytes(a).equals(before)).toBe(true);
    opt.dispose();
  });

  test("zeroGrad sets every gradient to null, after which step changes nothing", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new AdamW([{ params: [a] }, { params: [b] }], options(hyper));
    backwardQuadratic(a, CA);
    backwardQuadratic(b, CB);
    expect(gradOf(a)).not.toBeNull();
    expect(gradOf(b)).not.toBeNull();
    opt.zeroGrad();
    expect(gradOf(a)).toBeNull();
    expect(gradOf(b)).toBeNull();
    opt.step();
    expect(read(a)).toEqual(A0);
    expect(read(b)).toEqual(B0);
    const state = opt.stateDict();
    expect(state.steps).toEqual([null, null]);
    expect(Object.keys(state.tensors)).toEqual([]);
    opt.dispose();
  });
});

describe("state dict", () => {
  const steps = 4;
  /** Runs `n` quadratic-loss steps. */
  const train = (opt: AdamW, params: Tensor[], n: number): void => {
    for (let s = 0; s < n; s++) {
      opt.zeroGrad();
      backwardQuadratic(params[0]!, CA);
      backwardQuadratic(params[1]!, CB);
      opt.step();
    }
  };
  const groupsOf = (params: Tensor[]) => [
    { params: [params[0]!], options: { lr: 0.07 } },
    { params: [params[1]!], options: { lr: 0.02, betas: [0.7, 0.9] as const } },
  ];

  test("contents: kind, options, steps and moments equal to the reference", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new AdamW([a, b], options(hyper));
    const refA = new RefAdamW([...A0]);
    const refB = new RefAdamW([...B0]);
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      backwardQuadratic(a, CA);
      backwardQuadratic(b, CB);
      refA.step(refA.quadraticGrad(CA), hyper);
      refB.step(refB.quadraticGrad(CB), hyper);
      opt.step();
    }
    const state = opt.stateDict();
    try {
      expect(state.kind).toBe("adamw");
      expect(state.steps).toEqual([3, 3]);
      expect(state.groups).toEqual([{ options: { ...options(hyper), betas: [hyper.b1, hyper.b2] }, size: 2 }]);
      expect(JSON.parse(JSON.stringify({ groups: state.groups, steps: state.steps }))).toEqual({
        groups: state.groups,
        steps: state.steps,
      });
      expectClose(read(state.tensors["state.0.exp_avg"]!), refA.m, 1e-12);
      expectClose(read(state.tensors["state.0.exp_avg_sq"]!), refA.v, 1e-12);
      expectClose(read(state.tensors["state.1.exp_avg"]!), refB.m, 1e-12);
      expectClose(read(state.tensors["state.1.exp_avg_sq"]!), refB.v, 1e-12);

      // The tensors are copies: overwriting them does not disturb the optimizer.
      for (const t of Object.values(state.tensors)) tidy(() => t.fill_(123));
      opt.zeroGrad();
      backwardQuadratic(a, CA);
      refA.step(refA.quadraticGrad(CA), hyper);
      opt.step();
      expectClose(read(a), refA.p, 1e-12);
    } finally {
      for (const t of Object.values(state.tensors)) t.dispose();
      opt.dispose();
    }
  });

  test("stateDict -> new optimizer -> loadStateDict continues bit-identically", () => {
    // Uninterrupted run.
    const straight = [param(A0), param(B0)];
    const optStraight = new AdamW(groupsOf(straight), options(hyper));
    train(optStraight, straight, 2 * steps);

    // Interrupted run: train, snapshot parameters and state, resume in a fresh optimizer on fresh tensors.
    const first = [param(A0), param(B0)];
    const optFirst = new AdamW(groupsOf(first), options(hyper));
    train(optFirst, first, steps);
    optFirst.groups[0]!.options.lr = 0.07; // unchanged value, but set through the live options
    const state = optFirst.stateDict();
    const resumed = first.map((p) => param(read(p), p.shape));
    optFirst.dispose();
    const optResumed = new AdamW([{ params: [resumed[0]!] }, { params: [resumed[1]!] }]); // default options
    optResumed.loadStateDict(state);
    for (const t of Object.values(state.tensors)) t.dispose();
    expect(optResumed.groups[0]!.options).toEqual(optStraight.groups[0]!.options);
    expect(optResumed.groups[1]!.options).toEqual(optStraight.groups[1]!.options);
    train(optResumed, resumed, steps);

    expect(bytes(resumed[0]!).equals(bytes(straight[0]!))).toBe(true);
    expect(bytes(resumed[1]!).equals(bytes(straight[1]!))).toBe(true);
    // And resuming was not a no-op: the parameters moved after the snapshot.
    expect(bytes(resumed[0]!).equals(bytes(first[0]!))).toBe(false);
    optStraight.dispose();
    optResumed.dispose();
  });

  test("a state dict survives safetensors + JSON and still resumes bit-identically", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-adamw-"));
    try {
      const straight = [param(A0), param(B0)];
      const optStraight = new AdamW(groupsOf(straight), options(hyper));
      train(optStraight, straight, 2 * steps);

      const first = [param(A0), param(B0)];
      const optFirst = new AdamW(groupsOf(first), options(hyper));
      train(optFirst, first, steps);
      const state = optFirst.stateDict();
      const file = join(dir, "optim.safetensors");
      saveSafetensors(file, state.tensors);
      const json = JSON.stringify({ kind: state.kind, groups: state.groups, steps: state.steps });
      for (const t of Object.values(state.tensors)) t.dispose();
      const resumed = first.map((p) => param(read(p), p.shape));
      optFirst.dispose();

      const { tensors } = loadSafetensors(file);
      const restored: OptimizerState = { ...JSON.parse(json), tensors: Object.fromEntries(tensors) };
      const optResumed = new AdamW([{ params: [resumed[0]!] }, { params: [resumed[1]!] }]);
      optResumed.loadStateDict(restored);
      for (const t of tensors.values()) t.dispose();
      train(optResumed, resumed, steps);
      expect(bytes(resumed[0]!).equals(bytes(straight[0]!))).toBe(true);
      expect(bytes(resumed[1]!).equals(bytes(straight[1]!))).toBe(true);
      optStraight.dispose();
      optResumed.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("loadStateDict with a mismatched layout throws", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new AdamW([a, b], options(hyper));
    backwardQuadratic(a, CA);
    backwardQuadratic(b, CB);
    opt.step();
    const state = opt.stateDict();
    try {
      const c = param(A0);
      const d = param(B0);
      const e = param([1]);
      const twoGroups = new AdamW([{ params: [c] }, { params: [d] }]);
      expect(() => twoGroups.loadStateDict(state)).toThrow(/groups/);
      const threeParams = new AdamW([c, d, e]);
      expect(() => threeParams.loadStateDict(state)).toThrow(/groups/);
      const oneParam = new AdamW([c]);
      expect(() => oneParam.loadStateDict(state)).toThrow(/groups/);
      const sgd = new SGD([c, d]);
      expect(() => sgd.loadStateDict(state)).toThrow(/adamw/);
      const same = new AdamW([c, d]);
      expect(() => same.loadStateDict({ ...state, kind: "sgd" })).toThrow(/sgd/);
      for (const o of [twoGroups, threeParams, oneParam, same]) o.dispose();
      sgd.dispose();
    } finally {
      for (const t of Object.values(state.tensors)) t.dispose();
      opt.dispose();
    }
  });

  test("loadStateDict with moments of an incompatible shape throws without leaking tensors", () => {
    // Saved for a parameter of shape [2]; loaded for one of shape [3]. The leak check (afterEach) must also hold.
    const pair = param([0.5, 0.6]);
    const optPair = new AdamW([pair], options(hyper));
    backwardQuadratic(pair, [1, 1]);
    optPair.step();
    const state = optPair.stateDict();
    const big = param([0.5, 0.6, 0.7]);
    const optBig = new AdamW([big], options(hyper));
    try {
      expect(() => optBig.loadStateDict(state)).toThrow();
    } finally {
      for (const t of Object.values(state.tensors)) t.dispose();
      optPair.dispose();
      optBig.dispose();
    }
  });

  test("loadStateDict refuses moments that would only fit by broadcasting", () => {
    // Saved for a parameter of shape [1]; loaded for one of shape [3]: the moments must not be broadcast.
    const small = param([0.5]);
    const optSmall = new AdamW([small], options(hyper));
    backwardQuadratic(small, [1]);
    optSmall.step();
    const state = optSmall.stateDict();
    const big = param([0.5, 0.6, 0.7]);
    const optBig = new AdamW([big], options(hyper));
    try {
      expect(() => optBig.loadStateDict(state)).toThrow();
    } finally {
      for (const t of Object.values(state.tensors)) t.dispose();
      optSmall.dispose();
      optBig.dispose();
    }
  });
});

describe("lifetime", () => {
  test("dispose frees the moments; stateDict tensors are the caller's", () => {
    const a = param(A0);
    const b = param(B0);
    const start = liveTensorCount();
    const opt = new AdamW([a, b], options(hyper));
    expect(liveTensorCount()).toBe(start);
    backwardQuadratic(a, CA);
    backwardQuadratic(b, CB);
    opt.step();
    expect(liveTensorCount()).toBe(start + 4); // exp_avg and exp_avg_sq per parameter
    opt.zeroGrad();
    backwardQuadratic(a, CA);
    opt.step();
    expect(liveTensorCount()).toBe(start + 4); // reused, not reallocated
    const state = opt.stateDict();
    expect(liveTensorCount()).toBe(start + 8);
    for (const t of Object.values(state.tensors)) t.dispose();
    expect(liveTensorCount()).toBe(start + 4);
    opt.dispose();
    expect(liveTensorCount()).toBe(start);
    expect(a.isDisposed).toBe(false);
    expect(b.isDisposed).toBe(false);
    const afterDispose = opt.stateDict();
    expect(afterDispose.steps).toEqual([null, null]);
    expect(Object.keys(afterDispose.tensors)).toEqual([]);
  });

  test("loadStateDict replaces (and frees) the previous state", () => {
    const a = param(A0);
    const opt = new AdamW([a], options(hyper));
    backwardQuadratic(a, CA);
    opt.step();
    const start = liveTensorCount();
    const state = opt.stateDict();
    opt.loadStateDict(state);
    for (const t of Object.values(state.tensors)) t.dispose();
    expect(liveTensorCount()).toBe(start);
    opt.dispose();
  });
});
