// Covers src/optim/sgd.ts against torch.optim.SGD's formulas recomputed in float64 JS (plain, momentum, dampening,
// Nesterov, coupled weight decay, maximize, groups, skipped parameters), the Nesterov option checks, zeroGrad, exact
// resume through stateDict/loadStateDict and freeing buffers; and src/optim/clip.ts (clipGradNorm, 2-, 1- and inf-norms).
import { afterEach, describe, expect, test } from "vitest";
import { AdamW, clipGradNorm, SGD, type SGDOptions } from "../../src/optim/index.js";
import { liveTensorCount, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { backwardLinear, backwardQuadratic, bytes, gradOf, param, read, useOwnedParams } from "../helpers/params.js";
import { expectClose } from "../helpers/numeric.js";

useLeakCheck();
// Registered after the leak check so that it runs before it (vitest runs afterEach hooks in reverse).
useOwnedParams();

// ---- the reference, in float64 JS --------------------------------------------------------------

type Hyper = SGDOptions;
const plain: Hyper = { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

class RefSGD {
  buf: number[] | null = null;
  constructor(public p: number[]) {}
  quadraticGrad(c: readonly number[]): number[] {
    return this.p.map((x, i) => 2 * c[i]! * x);
  }
  step(grad: readonly number[], h: Hyper): void {
    let d = grad.map((g) => (h.maximize ? -g : g));
    if (h.weightDecay !== 0) d = d.map((g, i) => g + h.weightDecay * this.p[i]!);
    if (h.momentum !== 0) {
      if (this.buf === null) this.buf = [...d];
      else this.buf = this.buf.map((b, i) => h.momentum * b + (1 - h.dampening) * d[i]!);
      const buf = this.buf;
      d = h.nesterov ? d.map((g, i) => g + h.momentum * buf[i]!) : [...buf];
    }
    this.p = this.p.map((x, i) => x - h.lr * d[i]!);
  }
}

const A0 = [0.9, -1.3, 0.4, 2.1];
const CA = [0.5, 1.5, -0.25, 0.75];
const B0 = [-0.6, 1.1, 0.05];
const CB = [2, 0.3, 1.2];

/** Runs `steps` quadratic-loss steps on the optimizer and on JS references, comparing after each. */
function compare(h: Hyper, steps = 5): void {
  const a = param(A0, [2, 2]);
  const b = param(B0);
  const opt = new SGD([a, b], h);
  const refA = new RefSGD([...A0]);
  const refB = new RefSGD([...B0]);
  try {
    for (let s = 0; s < steps; s++) {
      opt.zeroGrad();
      backwardQuadratic(a, CA);
      backwardQuadratic(b, CB);
      refA.step(refA.quadraticGrad(CA), h);
      refB.step(refB.quadraticGrad(CB), h);
      opt.step();
      expectClose(read(a), refA.p, 1e-13);
      expectClose(read(b), refB.p, 1e-13);
    }
    expect(a.shape).toEqual([2, 2]);
  } finally {
    opt.dispose();
  }
}

describe("SGD update", () => {
  test("plain: p -= lr * g", () => compare(plain));
  test("momentum: buf = g on the first step, then momentum * buf + g", () => compare({ ...plain, momentum: 0.9 }));
  test("dampening applies from the second step on: buf = momentum * buf + (1 - dampening) * g", () =>
    compare({ ...plain, momentum: 0.9, dampening: 0.6 }));
  test("Nesterov: d = g + momentum * buf", () => compare({ ...plain, momentum: 0.8, nesterov: true }));
  test("weight decay is coupled: g += weightDecay * p (without momentum)", () => compare({ ...plain, weightDecay: 0.3 }));
  test("weight decay enters the momentum buffer", () => compare({ ...plain, momentum: 0.7, weightDecay: 0.3, dampening: 0.2 }));
  test("maximize: the update uses -g", () => compare({ ...plain, maximize: true }));
  test("maximize, weight decay and Nesterov momentum together", () =>
    compare({ ...plain, lr: 0.05, momentum: 0.85, weightDecay: 0.2, nesterov: true, maximize: true }));

  test("the first momentum step equals plain SGD; the buffer then carries over", () => {
    // Linear loss: the gradient is c every step, so the momentum sum is closed form: step k moves by lr * c * sum(m^i).
    const a = param([0, 0, 0]);
    const c = [1, -2, 0.5];
    const opt = new SGD([a], { lr: 0.5, momentum: 0.5 });
    const expected = [0, 0, 0];
    let factor = 0;
    for (let k = 0; k < 3; k++) {
      factor = factor * 0.5 + 1; // 1, 1.5, 1.75
      expected.forEach((_, i) => (expected[i] = expected[i]! - 0.5 * c[i]! * factor));
      opt.zeroGrad();
      backwardLinear(a, c);
      opt.step();
      expect(read(a)).toEqual(expected);
    }
    opt.dispose();
  });

  test("defaults: lr 1e-3, no momentum, no decay", () => {
    const a = param(A0);
    const opt = new SGD([a]);
    expect(opt.groups[0]!.options).toEqual({ lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false });
    backwardLinear(a, CA);
    opt.step();
    expectClose(
      read(a),
      A0.map((x, i) => x - 1e-3 * CA[i]!),
      1e-15,
    );
    opt.dispose();
  });
});

describe("SGD options, groups and parameters", () => {
  test("Nesterov without momentum (or with dampening) is refused", () => {
    const a = param(A0);
    expect(() => new SGD([a], { nesterov: true })).toThrow(TypeError);
    expect(() => new SGD([a], { nesterov: true })).toThrow(/Nesterov/);
    expect(() => new SGD([a], { nesterov: true, momentum: 0.9, dampening: 0.1 })).toThrow(/Nesterov/);
    expect(() => new SGD([{ params: [a], options: { nesterov: true } }], { momentum: 0 })).toThrow(/Nesterov/);
    expect(() => new SGD([{ params: [a] }, { params: [], options: { nesterov: true } }], { momentum: 0 })).toThrow(/Nesterov/);
    const ok = new SGD([a], { nesterov: true, momentum: 0.9 });
    ok.dispose();
  });

  test("param groups use their own hyper-parameters", () => {
    const a = param(A0);
    const b = param(B0);
    const hA: Hyper = { ...plain, lr: 0.2, momentum: 0.5 };
    const hB: Hyper = { ...plain, lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 0.1 };
    const opt = new SGD(
      [
        { params: [a], options: { lr: 0.2 } },
        { params: [b], options: { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 0.1 } },
      ],
      { momentum: 0.5 },
    );
    const refA = new RefSGD([...A0]);
    const refB = new RefSGD([...B0]);
    for (let s = 0; s < 4; s++) {
      opt.zeroGrad();
      backwardQuadratic(a, CA);
      backwardQuadratic(b, CB);
      refA.step(refA.quadraticGrad(CA), hA);
      refB.step(refB.quadraticGrad(CB), hB);
      opt.step();
      expectClose(read(a), refA.p, 1e-13);
      expectClose(read(b), refB.p, 1e-13);
    }
    opt.dispose();
  });

  test("changing group.options.lr between steps takes effect", () => {
    const a = param(A0);
    const opt = new SGD([a], { momentum: 0.9 });
    const ref = new RefSGD([...A0]);
    for (const lr of [0.1, 0.01, 0.3, 0]) {
      opt.groups[0]!.options.lr = lr;
      opt.zeroGrad();
      backwardQuadratic(a, CA);
      ref.step(ref.quadraticGrad(CA), { ...plain, momentum: 0.9, lr });
      opt.step();
      expectClose(read(a), ref.p, 1e-13);
    }
    opt.dispose();
  });

  test("parameters without grad are skipped: unchanged, and no buffer is created for them", () => {
    const a = param(A0);
    const b = param(B0);
    const h: Hyper = { ...plain, momentum: 0.9, weightDecay: 0.5 };
    const opt = new SGD([a, b], h);
    const refA = new RefSGD([...A0]);
    const refB = new RefSGD([...B0]);
    backwardQuadratic(a, CA);
    refA.step(refA.quadraticGrad(CA), h);
    opt.step();
    expectClose(read(a), refA.p, 1e-13);
    expect(read(b)).toEqual(B0);
    const state = opt.stateDict();
    expect(state.steps).toEqual([1, null]);
    expect(Object.keys(state.tensors)).toEqual(["state.0.momentum_buffer"]);
    for (const t of Object.values(state.tensors)) t.dispose();

    // b's first step with a gradient starts its buffer at g (no dampening, no history).
    opt.zeroGrad();
    backwardQuadratic(a, CA);
    backwardQuadratic(b, CB);
    refA.step(refA.quadraticGrad(CA), h);
    refB.step(refB.quadraticGrad(CB), h);
    opt.step();
    expectClose(read(a), refA.p, 1e-13);
    expectClose(read(b), refB.p, 1e-13);
    opt.dispose();
  });

  test("zeroGrad sets every gradient to null, after which step changes nothing", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new SGD([{ params: [a] }, { params: [b] }], { lr: 0.1, momentum: 0.9 });
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
    expect(opt.stateDict().steps).toEqual([null, null]);
    opt.dispose();
  });
});

describe("SGD state dict and lifetime", () => {
  const h: Hyper = { ...plain, lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 };
  const train = (opt: SGD, params: Tensor[], n: number): void => {
    for (let s = 0; s < n; s++) {
      opt.zeroGrad();
      backwardQuadratic(params[0]!, CA);
      backwardQuadratic(params[1]!, CB);
      opt.step();
    }
  };

  test("contents: kind, options, steps and the momentum buffers of the reference", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new SGD([a, b], h);
    const refA = new RefSGD([...A0]);
    const refB = new RefSGD([...B0]);
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      backwardQuadratic(a, CA);
      backwardQuadratic(b, CB);
      refA.step(refA.quadraticGrad(CA), h);
      refB.step(refB.quadraticGrad(CB), h);
      opt.step();
    }
    const state = opt.stateDict();
    try {
      expect(state.kind).toBe("sgd");
      expect(state.groups).toEqual([{ options: h, size: 2 }]);
      expect(state.steps.every((s) => s !== null)).toBe(true);
      expect(Object.keys(state.tensors).sort()).toEqual(["state.0.momentum_buffer", "state.1.momentum_buffer"]);
      expectClose(read(state.tensors["state.0.momentum_buffer"]!), refA.buf!, 1e-13);
      expectClose(read(state.tensors["state.1.momentum_buffer"]!), refB.buf!, 1e-13);
    } finally {
      for (const t of Object.values(state.tensors)) t.dispose();
      opt.dispose();
    }
  });

  test("stateDict -> new optimizer -> loadStateDict continues bit-identically", () => {
    const straight = [param(A0), param(B0)];
    const optStraight = new SGD(straight, h);
    train(optStraight, straight, 6);

    const first = [param(A0), param(B0)];
    const optFirst = new SGD(first, h);
    train(optFirst, first, 3);
    const state = optFirst.stateDict();
    const resumed = first.map((p) => param(read(p), p.shape));
    optFirst.dispose();
    const optResumed = new SGD(resumed); // default options, restored from the state
    optResumed.loadStateDict(state);
    for (const t of Object.values(state.tensors)) t.dispose();
    expect(optResumed.groups[0]!.options).toEqual(h);
    train(optResumed, resumed, 3);

    expect(bytes(resumed[0]!).equals(bytes(straight[0]!))).toBe(true);
    expect(bytes(resumed[1]!).equals(bytes(straight[1]!))).toBe(true);
    expect(bytes(resumed[0]!).equals(bytes(first[0]!))).toBe(false);
    optStraight.dispose();
    optResumed.dispose();
  });

  test("loadStateDict with a mismatched layout or kind throws", () => {
    const a = param(A0);
    const b = param(B0);
    const opt = new SGD([a, b], h);
    train(opt, [a, b], 1);
    const state = opt.stateDict();
    try {
      const c = param(A0);
      const d = param(B0);
      const twoGroups = new SGD([{ params: [c] }, { params: [d] }]);
      expect(() => twoGroups.loadStateDict(state)).toThrow(/groups/);
      const oneParam = new SGD([c]);
      expect(() => oneParam.loadStateDict(state)).toThrow(/groups/);
      const adamw = new AdamW([c, d]);
      expect(() => adamw.loadStateDict(state)).toThrow(/sgd/);
      const same = new SGD([c, d]);
      expect(() => same.loadStateDict({ ...state, kind: "adamw" })).toThrow(/adamw/);
      for (const o of [twoGroups, oneParam, same, adamw]) o.dispose();
    } finally {
      for (const t of Object.values(state.tensors)) t.dispose();
      opt.dispose();
    }
  });

  test("loadStateDict refuses a momentum buffer that would only fit by broadcasting", () => {
    // Saved for a parameter of shape [1]; loaded for one of shape [3]: the buffer must not be broadcast.
    const small = param([0.5]);
    const optSmall = new SGD([small], { momentum: 0.9 });
    backwardQuadratic(small, [1]);
    optSmall.step();
    const state = optSmall.stateDict();
    const big = param([0.5, 0.6, 0.7]);
    const optBig = new SGD([big], { momentum: 0.9 });
    try {
      expect(Object.keys(state.tensors)).toEqual(["state.0.momentum_buffer"]);
      expect(() => optBig.loadStateDict(state)).toThrow();
    } finally {
      for (const t of Object.values(state.tensors)) t.dispose();
      optSmall.dispose();
      optBig.dispose();
    }
  });

  test("dispose frees the momentum buffers; plain SGD keeps none", () => {
    const a = param(A0);
    const b = param(B0);
    const start = liveTensorCount();
    const noMomentum = new SGD([a, b], { lr: 0.1 });
    backwardQuadratic(a, CA);
    backwardQuadratic(b, CB);
    noMomentum.step();
    expect(liveTensorCount()).toBe(start);
    noMomentum.dispose();

    const opt = new SGD([a, b], { lr: 0.1, momentum: 0.9 });
    opt.step();
    expect(liveTensorCount()).toBe(start + 2);
    opt.step();
    expect(liveTensorCount()).toBe(start + 2); // buffers updated in place
    const state = opt.stateDict();
    expect(liveTensorCount()).toBe(start + 4);
    for (const t of Object.values(state.tensors)) t.dispose();
    opt.dispose();
    expect(liveTensorCount()).toBe(start);
    expect(a.isDisposed).toBe(false);
  });
});

describe("clipGradNorm", () => {
  const GA = [3, -4, 1];
  const GB = [2, -1, 0.5, 7];
  const all = [...GA, ...GB];
  const l2 = Math.sqrt(all.reduce((s, g) => s + g * g, 0)); // sqrt(80.25)
  const withGrads = (): Tensor[] => {
    const a = param([0.1, 0.2, 0.3]);
    const b = param([1, 2, 3, 4], [2, 2]);
    backwardLinear(a, GA);
    backwardLinear(b, GB);
    return [a, b];
  };

  test("returns the global 2-norm and scales gradients by maxNorm / (norm + 1e-6) when above", () => {
    const [a, b] = withGrads();
    expect(gradOf(a!)).toEqual(GA);
    const total = clipGradNorm([a!, b!], 2);
    expectClose([total], [l2], 1e-14);
    const coefficient = 2 / (l2 + 1e-6);
    expectClose(
      gradOf(a!)!,
      GA.map((g) => g * coefficient),
      1e-13,
    );
    expectClose(
      gradOf(b!)!,
      GB.map((g) => g * coefficient),
      1e-13,
    );
    const after = Math.sqrt([...gradOf(a!)!, ...gradOf(b!)!].reduce((s, g) => s + g * g, 0));
    expectClose([after], [2], 1e-6);
    // The parameters themselves are untouched.
    expect(read(a!)).toEqual([0.1, 0.2, 0.3]);
  });

  test("leaves gradients bit-identical when the norm is below maxNorm", () => {
    const [a, b] = withGrads();
    const total = clipGradNorm([a!, b!], l2 * 1.01);
    expectClose([total], [l2], 1e-14);
    expect(gradOf(a!)).toEqual(GA);
    expect(gradOf(b!)).toEqual(GB);
  });

  test("Infinity norm: the largest |g|, and clipping brings it to maxNorm", () => {
    const [a, b] = withGrads();
    const total = clipGradNorm([a!, b!], 3.5, Infinity);
    expect(total).toBe(7);
    const coefficient = 3.5 / (7 + 1e-6);
    expectClose(
      gradOf(a!)!,
      GA.map((g) => g * coefficient),
      1e-13,
    );
    expectClose(
      gradOf(b!)!,
      GB.map((g) => g * coefficient),
      1e-13,
    );
    expectClose([Math.max(...[...gradOf(a!)!, ...gradOf(b!)!].map(Math.abs))], [3.5], 1e-6);
  });

  test("1-norm: the sum of |g|", () => {
    const [a, b] = withGrads();
    const l1 = all.reduce((s, g) => s + Math.abs(g), 0); // 18.5
    const total = clipGradNorm([a!, b!], 100, 1);
    expectClose([total], [l1], 1e-14);
    expect(gradOf(a!)).toEqual(GA);
  });

  test("parameters without grad are ignored; none at all gives 0", () => {
    const [a, b] = withGrads();
    const none = param([5, 5]);
    const total = clipGradNorm([a!, none, b!], 1e9);
    expectClose([total], [l2], 1e-14);
    expect(gradOf(none)).toBeNull();
    expect(clipGradNorm([none], 1)).toBe(0);
    expect(clipGradNorm([], 1)).toBe(0);
  });
});
