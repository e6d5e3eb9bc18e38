/**
 * Float64 parameters for optimizer tests: `param` makes a leaf that is disposed after the test (its
 * afterEach hook is registered by `useOwnedParams`, before the leak check's), plus readers and
 * losses with closed-form gradients.
 */
import { afterEach } from "vitest";
import { type Tensor, tensor, tidy } from "../../src/tensor/index.js";

const owned: Tensor[] = [];

/** Registers the hook that disposes every `param` after each test. */
export function useOwnedParams(): void {
  afterEach(() => {
    for (const t of owned.splice(0)) t.dispose();
  });
}

/** A float64 leaf parameter owned by the current test (call useOwnedParams after useLeakCheck). */
export function param(data: readonly number[], shape: readonly number[] = [data.length]): Tensor {
  const p = tensor(Float64Array.from(data), { shape }).requiresGrad_();
  owned.push(p);
  return p;
}

export const read = (t: Tensor): number[] => Array.from(t.toArray() as Float64Array);

export const gradOf = (p: Tensor): number[] | null =>
  tidy(() => {
    const g = p.grad;
    return g === null ? null : read(g);
  });

export const bytes = (t: Tensor): Buffer => Buffer.from((t.toArray() as Float64Array).buffer);

/** Accumulates the gradient of loss = sum(c * p^2) into p.grad, i.e. 2 c p. */
export function backwardQuadratic(p: Tensor, c: readonly number[]): void {
  tidy(() => {
    p.square()
      .mul(tensor(Float64Array.from(c), { shape: p.shape }))
      .sum()
      .backward();
  });
}

/** Accumulates the gradient of loss = sum(c * p) into p.grad, i.e. exactly c. */
export function backwardLinear(p: Tensor, c: readonly number[]): void {
  tidy(() => {
    p.mul(tensor(Float64Array.from(c), { shape: p.shape }))
      .sum()
      .backward();
  });
}
