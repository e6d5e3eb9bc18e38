// Issue 13 items 3 and 11 at the tensor layer: tensors left to the garbage collector are reported to V8 as external
// memory (so V8 collects them on time) and the report is withdrawn when they are freed; integer arguments outside
// int64 (1e308, a 70-bit bigint) are refused with a TypeError instead of undefined behaviour in the addon.
import { describe, expect, it } from "vitest";
import { native } from "../../src/native/addon.js";
import { manualSeed, zeros } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

const MB = 1024 * 1024;

describe("external memory accounting", () => {
  it("a 4 MiB tensor handed to the GC raises V8's external-memory count by 4 MiB until it is disposed", async () => {
    const before = native.externalMemory();
    const t = zeros([1024, 1024]); // outside any scope: adopted by the GC at the end of this job
    await new Promise((resolve) => setTimeout(resolve, 0));
    const held = native.externalMemory() - before;
    expect(held).toBeGreaterThanOrEqual(4 * MB - 64 * 1024);
    expect(held).toBeLessThan(5 * MB);
    t.dispose();
    expect(Math.abs(native.externalMemory() - before)).toBeLessThan(MB);
  });
});

describe("integer arguments outside int64", () => {
  it("1e308 and -1e300 as a shape or seed are TypeErrors naming the op", () => {
    expect(() => zeros([1e308])).toThrow(TypeError);
    expect(() => zeros([1e308])).toThrow(/zeros: argument 0 must be an integer within the int64 range/);
    expect(() => manualSeed(-1e300)).toThrow(/manualSeed: argument 0 must be an integer within the int64 range/);
    expect(() => manualSeed(2 ** 63)).toThrow(TypeError);
  });

  it("a bigint beyond 64 bits is refused, one within is accepted", () => {
    expect(() => manualSeed(2n ** 70n)).toThrow(/int64 range/);
    manualSeed(2n ** 62n);
    manualSeed(0);
  });
});
