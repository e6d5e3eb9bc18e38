/**
 * Numeric helpers for tests: flat host copies, max-abs comparison, deterministic tensors, plain-JS
 * vector arithmetic (to compute expected values independently of libtorch), and a finite-difference
 * gradient check in float64 that compares libtorch's backward with central differences of a scalar
 * projection of the op's output.
 */
import { expect } from "vitest";
import { type Device, manualSeed, type Tensor, tensor, tidy } from "../../src/tensor/index.js";

export function values(t: Tensor): number[] {
  return Array.from(t.toArray() as ArrayLike<number | bigint>, Number);
}

export function expectClose(actual: readonly number[], expected: readonly number[], tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= tolerance * Math.max(1, Math.abs(e)))) {
      throw new Error(`element ${i}: ${a} differs from ${e} by more than ${tolerance}`);
    }
  });
}

/** Deterministic pseudo-random numbers (mulberry32) so tests do not depend on libtorch's RNG. */
export function seededValues(count: number, seed: number, low = -1, high = 1): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out.push(low + (high - low) * u);
  }
  return out;
}

/** A deterministic float32 tensor (values from mulberry32, not libtorch's RNG). */
export function fixedTensor(shape: number[], seed: number, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(
    Float32Array.from(seededValues(n, seed), (v) => v * scale),
    { shape },
  );
}

export const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
export const norm = (a: readonly number[]): number => Math.sqrt(dot(a, a));
export const cos = (a: readonly number[], b: readonly number[]): number => dot(a, b) / (norm(a) * norm(b));
export const maxAbs = (a: readonly number[]): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
export const maxAbsDiff = (a: readonly number[], b: readonly number[]): number => {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
/** Rows of a flat [n, d] array. */
export const rows = (flat: readonly number[], d: number): number[][] =>
  Array.from({ length: flat.length / d }, (_, r) => flat.slice(r * d, (r + 1) * d));

export interface GradInput {
  shape: number[];
  data: number[];
}

/**
 * Checks d(sum(f(inputs) * w))/d(inputs) from backward against central differences (float64).
 * `f` receives float64 tensors on `device`; `seed` re-seeds libtorch before each call (for dropout).
 */
export function gradcheck(
  f: (...inputs: Tensor[]) => Tensor,
  inputs: GradInput[],
  options: { device?: Device; eps?: number; tolerance?: number; seed?: number } = {},
): void {
  const device = options.device ?? "cpu";
  const eps = options.eps ?? 1e-6;
  const tolerance = options.tolerance ?? 1e-5;
  const evaluate = (datas: number[][]): number =>
    tidy(() => {
      if (options.seed !== undefined) manualSeed(options.seed);
      const ts = datas.map((d, i) => tensor(Float64Array.from(d), { shape: inputs[i]!.shape, device }));
      const out = f(...ts);
      const weights = tensor(Float64Array.from(seededValues(out.numel, 99)), { shape: out.shape, device });
      return out.mul(weights).sum().toNumber();
    });
  const analytic = tidy(() => {
    if (options.seed !== undefined) manualSeed(options.seed);
    const ts = inputs.map((input) => tensor(Float64Array.from(input.data), { shape: input.shape, device }).requiresGrad_());
    const out = f(...ts);
    const weights = tensor(Float64Array.from(seededValues(out.numel, 99)), { shape: out.shape, device });
    out.mul(weights).sum().backward();
    return ts.map((t) => (t.grad ? values(t.grad) : new Array(t.numel).fill(0)));
  });
  inputs.forEach((input, which) => {
    const numeric = input.data.map((_, k) => {
      const plus = inputs.map((x) => [...x.data]);
      const minus = inputs.map((x) => [...x.data]);
      plus[which]![k]! += eps;
      minus[which]![k]! -= eps;
      return (evaluate(plus) - evaluate(minus)) / (2 * eps);
    });
    const scale = Math.max(1, ...numeric.map(Math.abs));
    numeric.forEach((n, k) => {
      const a = analytic[which]![k]!;
      if (Math.abs(a - n) > tolerance * scale) {
        throw new Error(`input ${which}, element ${k}: backward ${a} vs finite difference ${n}`);
      }
    });
  });
}
