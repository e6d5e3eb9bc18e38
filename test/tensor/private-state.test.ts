// Tensor's native handle and lifetime flags are #private at run time, not only hidden from the typings:
// code outside the class can neither read nor reassign them, and writing properties of those names
// changes nothing about the tensor's data or lifetime. The tensor layer reaches them only through
// src/tensor/internal.ts.
import { describe, expect, it } from "vitest";
import { handleOf, installTensorInternals, isKept } from "../../src/tensor/internal.js";
import { keep, liveTensorCount, type Tensor, tensor, TensorScope, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

/** Writes through an untyped view, as plain JavaScript could. */
const loose = (t: Tensor) => t as unknown as Record<string | symbol, unknown>;

describe("Tensor's private state", () => {
  it("has no own property or symbol a caller could read", () => {
    using t = tensor([1, 2, 3]);
    expect(Reflect.ownKeys(t)).toEqual([]);
    expect(Object.getOwnPropertySymbols(t)).toEqual([]);
    for (const name of ["handle", "kept", "released", "adoptByGc"]) {
      expect(loose(t)[name]).toBeUndefined();
      expect(name in t).toBe(false);
    }
    expect(JSON.stringify(Reflect.ownKeys(Object.getPrototypeOf(t)))).not.toMatch(/"(handle|kept|released|adoptByGc)"/);
  });

  it("reassigning a property named handle does not change the data an op reads", () => {
    using a = tensor([1, 2, 3]);
    using b = tensor([10, 20, 30]);
    loose(a).handle = handleOf(b);
    loose(a).handle = null;
    using sum = a.add(a);
    // 2 * [1, 2, 3], not 2 * [10, 20, 30] and not a crash on a null handle
    expect(sum.toList()).toEqual([2, 4, 6]);
    expect(a.shape).toEqual([3]);
  });

  it("setting kept from outside does not stop a scope from disposing the tensor", () => {
    const base = liveTensorCount();
    const escaped = tidy(() => {
      const t = tensor([1, 2]);
      loose(t).kept = true;
      loose(t).released = true;
      return { inner: t.mul(2), t };
    });
    // both came out of tidy (returned), still alive and readable
    expect(escaped.inner.toList()).toEqual([2, 4]);
    const scope = new TensorScope();
    const inside = scope.run(() => {
      const t = tensor([5]);
      loose(t).kept = true;
      return t;
    });
    scope.close();
    expect(inside.isDisposed).toBe(true);
    expect(isKept(inside)).toBe(false);
    escaped.inner.dispose();
    escaped.t.dispose();
    expect(liveTensorCount()).toBe(base);
  });

  it("keep() still marks a tensor through the internal accessor, and a scope then leaves it alone", () => {
    const scope = new TensorScope();
    const kept = scope.run(() => keep(tensor([7])));
    scope.close();
    expect(isKept(kept)).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(kept.toList()).toEqual([7]);
    kept.dispose();
  });

  it("the internals cannot be installed a second time (no one can swap the accessors)", () => {
    expect(() =>
      installTensorInternals({
        handleOf: () => null as never,
        isTensor: (_value): _value is Tensor => false,
        isKept: () => true,
        markKept: () => {},
        isReleased: () => true,
        adoptByGc: () => {},
      }),
    ).toThrow(/installed once/);
    using t = tensor([3]);
    using next = t.add(1);
    expect(next.toList()).toEqual([4]);
  });
});
