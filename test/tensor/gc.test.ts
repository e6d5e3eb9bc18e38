// The GC safety net: tensors no scope owns (created outside scopes, returned from the outermost
// tidy, kept) are freed when collected; a dropped, never-closed TensorScope frees its tensors; a
// tensor that gained a GC finalizer twice is still freed exactly once.
import { describe, expect, it } from "vitest";
import { keep, liveTensorCount, ones, type Tensor, TensorScope, tidy, zeros } from "../../src/tensor/index.js";

const gc = (globalThis as { gc?: () => void }).gc;

/** Collects until the live count reaches `target` (finalizers run after the collection, asynchronously). */
async function collectUntil(target: number): Promise<number> {
  for (let i = 0; i < 50 && liveTensorCount() > target; i++) {
    gc!();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return liveTensorCount();
}

describe.skipIf(!gc)("GC safety net (needs node --expose-gc, set in vitest.config.ts)", () => {
  it("frees unscoped tensors that were dropped without dispose", async () => {
    const before = liveTensorCount();
    for (let i = 0; i < 100; i++) zeros([16]).add(1);
    expect(liveTensorCount()).toBe(before + 200);
    expect(await collectUntil(before)).toBe(before);
  });

  it("frees tensors returned from the outermost tidy once dropped", async () => {
    const before = liveTensorCount();
    for (let i = 0; i < 50; i++) tidy(() => ones([4]).mul(2));
    expect(liveTensorCount()).toBe(before + 50);
    expect(await collectUntil(before)).toBe(before);
  });

  it("frees the tensors of a scope dropped without close()", async () => {
    const before = liveTensorCount();
    (() => {
      const scope = new TensorScope();
      scope.run(() => ones([8]).add(ones([8])));
    })();
    expect(liveTensorCount()).toBe(before + 3);
    expect(await collectUntil(before)).toBe(before);
  });

  it("keeps a kept tensor alive while referenced and frees it once when dropped", async () => {
    const before = liveTensorCount();
    let kept: Tensor | undefined = zeros([3]); // unscoped: already GC-owned
    keep(kept);
    keep(kept);
    const inScope = tidy(() => {
      const t = keep(ones([2]));
      return t.sum().toNumber();
    });
    expect(inScope).toBe(2);
    await collectUntil(before + 1);
    expect(kept.isDisposed).toBe(false);
    expect(kept.add(1).sum().toNumber()).toBe(3);
    kept = undefined;
    expect(await collectUntil(before)).toBe(before);
  });
});
