// Memory semantics: explicit idempotent dispose, tidy() scopes (returned tensors survive into the
// enclosing scope, everything else is freed, also on throw), keep(), TensorScope.run, the Effect
// Scope resource, and liveTensorCount() back to baseline.
import { Effect } from "effect";
import { describe, expect, it } from "vitest";
import {
  DisposedTensorError,
  keep,
  liveTensorCount,
  ones,
  type Tensor,
  TensorScope,
  tensor,
  tensorScope,
  tidy,
  zeros,
} from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

describe("dispose", () => {
  it("frees the native tensor once and is idempotent", () => {
    const before = liveTensorCount();
    const t = zeros([3]);
    expect(liveTensorCount()).toBe(before + 1);
    t.dispose();
    expect(liveTensorCount()).toBe(before);
    t.dispose();
    expect(liveTensorCount()).toBe(before);
    expect(t.isDisposed).toBe(true);
    expect(String(t)).toBe("Tensor(disposed)");
  });

  it("makes later use a DisposedTensorError naming the op", () => {
    const t = zeros([3]);
    t.dispose();
    expect(() => t.add(1)).toThrow(DisposedTensorError);
    try {
      t.exp();
    } catch (error) {
      expect((error as DisposedTensorError).op).toBe("exp");
      expect((error as DisposedTensorError)._tag).toBe("DisposedTensorError");
    }
    const other = ones([3]);
    expect(() => other.add(t)).toThrow(/argument 2 is a disposed tensor/);
    other.dispose();
  });

  it("frees views independently of their base", () => {
    const base = tensor([1, 2, 3, 4]);
    const view = base.view(2, 2);
    base.dispose();
    expect(view.toList()).toEqual([
      [1, 2],
      [3, 4],
    ]);
    view.dispose();
  });
});

describe("tidy", () => {
  it("disposes intermediates and hands the result to the caller", () => {
    const before = liveTensorCount();
    const result = tidy(() => {
      const a = ones([4]);
      const b = a.mul(2);
      return b.add(1);
    });
    expect(liveTensorCount()).toBe(before + 1);
    expect(result.toList()).toEqual([3, 3, 3, 3]);
    result.dispose();
  });

  it("keeps tensors inside returned arrays, objects and maps", () => {
    const before = liveTensorCount();
    const out = tidy(() => {
      zeros([1]);
      return { list: [ones([1]), ones([2])], map: new Map([["x", ones([3])]]), n: 4 };
    });
    expect(liveTensorCount()).toBe(before + 3);
    expect(out.n).toBe(4);
    for (const t of [...out.list, ...out.map.values()]) t.dispose();
    expect(liveTensorCount()).toBe(before);
  });

  it("moves returned tensors to the enclosing scope", () => {
    const before = liveTensorCount();
    let inner: Tensor | undefined;
    tidy(() => {
      inner = tidy(() => ones([2]).mul(3));
      expect(inner.isDisposed).toBe(false);
      return undefined;
    });
    expect(inner!.isDisposed).toBe(true);
    expect(liveTensorCount()).toBe(before);
  });

  it("disposes everything created before a throw", () => {
    const before = liveTensorCount();
    expect(() =>
      tidy(() => {
        ones([5]);
        ones([2]).add(ones([3])); // shape mismatch
      }),
    ).toThrow(/size of tensor/);
    expect(liveTensorCount()).toBe(before);
  });

  it("leaves tensors created outside alone and refuses promises", () => {
    const outside = ones([2]);
    tidy(() => outside.add(1).sum().toNumber());
    expect(outside.isDisposed).toBe(false);
    outside.dispose();
    expect(() => tidy(() => Promise.resolve(1))).toThrow(/synchronous/);
  });

  it("never disposes kept tensors", () => {
    const before = liveTensorCount();
    let kept: Tensor | undefined;
    tidy(() => {
      kept = keep(ones([2]));
      ones([3]);
    });
    expect(kept!.isDisposed).toBe(false);
    expect(liveTensorCount()).toBe(before + 1);
    kept!.dispose();
  });
});

describe("TensorScope", () => {
  it("tracks tensors created in run() until close()", () => {
    const before = liveTensorCount();
    const scope = new TensorScope();
    const t = scope.run(() => ones([2]).add(1));
    expect(scope.size).toBe(2);
    expect(t.isDisposed).toBe(false);
    scope.close();
    expect(t.isDisposed).toBe(true);
    expect(liveTensorCount()).toBe(before);
    expect(() => scope.run(() => ones([1]))).toThrow(/closed/);
    expect(liveTensorCount()).toBe(before);
  });

  it("is an Effect resource released when the Effect scope closes, also on failure", async () => {
    const before = liveTensorCount();
    const value = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const scope = yield* tensorScope;
          const t = scope.run(() => ones([3]).mul(2));
          expect(liveTensorCount()).toBe(before + 2);
          return scope.run(() => t.sum().toNumber());
        }),
      ),
    );
    expect(value).toBe(6);
    const failed = await Effect.runPromiseExit(
      Effect.scoped(
        Effect.gen(function* () {
          const scope = yield* tensorScope;
          scope.run(() => ones([4]));
          return yield* Effect.fail("boom");
        }),
      ),
    );
    expect(failed._tag).toBe("Failure");
    expect(liveTensorCount()).toBe(before);
  });
});
