// The addon's exports come from the op tables of native/src (native/src/ops.h): each function is
// named after its export, the constants are there, the benchmark-only entry points are not (they
// live in emlab_bench.node), and the typed-error factory is in place as soon as the loader returns.
import { describe, expect, it } from "vitest";
import { native } from "../../src/native/addon.js";
import { InvalidArgumentError } from "../../src/native/errors.js";

describe("native addon surface", () => {
  const exported = Object.entries(native as unknown as Record<string, unknown>);

  it("exports every op under the name its function carries (written once in its table)", () => {
    const functions = exported.filter(([, v]) => typeof v === "function") as [string, { name: string }][];
    expect(functions.length).toBeGreaterThan(100);
    expect(functions.filter(([key, fn]) => fn.name !== key)).toEqual([]);
  });

  it("exports the constants of the tables", () => {
    expect(native.torchVersion).toMatch(/^\d+\.\d+/);
    expect(typeof native.builtWithCuda).toBe("boolean");
    expect(native.unaryOps).toContain("exp");
    expect(native.binaryOps).toContain("add");
    expect(native.reduceOps.length).toBeGreaterThan(3);
  });

  it("keeps benchmark-only entry points out of the production addon", () => {
    expect(exported.map(([key]) => key)).not.toContain("benchTinyAdd");
  });

  it("raises typed errors with the op name straight from the loader (no tensor-layer import needed)", () => {
    const a = native.zeros([2, 3], 0, "cpu");
    const b = native.zeros([4, 5], 0, "cpu");
    try {
      let error: unknown = null;
      try {
        native.matmul(a, b);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).op).toBe("matmul");
      // A fast path reports the op it is a path of.
      expect(() => native.addTT(a, b)).toThrow(/^add: /);
    } finally {
      native.dispose(a);
      native.dispose(b);
    }
  });
});
