// Creating tensors (typed arrays, nested arrays, scalars, factories), dtype/device conversion,
// metadata accessors and host reads (bf16/f16 widened to f32, int64 as bigint).
import { describe, expect, it } from "vitest";
import {
  allDTypes,
  arange,
  empty,
  eye,
  full,
  linspace,
  manualSeed,
  ones,
  rand,
  randint,
  randn,
  tensor,
  tidy,
  zeros,
} from "../../src/tensor/index.js";
import { forEachDevice } from "../helpers/devices.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { values } from "../helpers/numeric.js";

useLeakCheck();

forEachDevice("creation", (device) => {
  it("takes a typed array with its dtype and an explicit shape", () =>
    tidy(() => {
      const t = tensor(new Float64Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3], device });
      expect(t.shape).toEqual([2, 3]);
      expect(t.dtype).toBe("f64");
      expect(t.device).toBe(device);
      expect(t.numel).toBe(6);
      expect(t.ndim).toBe(2);
      expect(Array.from(t.toArray() as Float64Array)).toEqual([1, 2, 3, 4, 5, 6]);
      const ints = tensor(new BigInt64Array([1n, -2n, 2n ** 40n]), { device });
      expect(ints.dtype).toBe("i64");
      expect(Array.from(ints.toArray() as BigInt64Array)).toEqual([1n, -2n, 2n ** 40n]);
    }));

  it("rejects a byte length that does not match the shape", () =>
    tidy(() => {
      expect(() => tensor(new Float32Array([1, 2, 3]), { shape: [2, 2], device })).toThrow(/byte length/);
    }));

  it("takes nested arrays and infers f32 / bool / i64", () =>
    tidy(() => {
      const t = tensor(
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
        { device },
      );
      expect(t.shape).toEqual([3, 2]);
      expect(t.dtype).toBe("f32");
      expect(t.toList()).toEqual([
        [1, 2],
        [3, 4],
        [5, 6],
      ]);
      expect(tensor([true, false], { device }).toList()).toEqual([true, false]);
      expect(tensor([1n, 2n], { device }).dtype).toBe("i64");
      expect(tensor([[1, 2]], { dtype: "i32", device }).toList()).toEqual([[1, 2]]);
    }));

  it("rejects ragged nested arrays", () => {
    expect(() => tensor([[1, 2], [3]] as number[][], { device })).toThrow(/ragged/);
  });

  it("makes 0-dim tensors from scalars", () =>
    tidy(() => {
      const t = tensor(2.5, { device });
      expect(t.shape).toEqual([]);
      expect(t.item()).toBe(2.5);
      expect(tensor(7n, { device }).item()).toBe(7n);
      expect(tensor(true, { device }).item()).toBe(true);
      expect(tensor(3, { dtype: "i32", device }).item()).toBe(3);
    }));

  it("has factories with the expected contents", () =>
    tidy(() => {
      expect(values(zeros([2, 2], { device }))).toEqual([0, 0, 0, 0]);
      expect(values(ones([3], { dtype: "i64", device }))).toEqual([1, 1, 1]);
      expect(values(full([2], 7.5, { device }))).toEqual([7.5, 7.5]);
      expect(empty([4, 5], { device }).shape).toEqual([4, 5]);
      const a = arange(5, undefined, 1, { device });
      expect(a.dtype).toBe("i64");
      expect(values(a)).toEqual([0, 1, 2, 3, 4]);
      expect(values(arange(1, 2, 0.25, { device }))).toEqual([1, 1.25, 1.5, 1.75]);
      expect(values(linspace(0, 1, 5, { device }))).toEqual([0, 0.25, 0.5, 0.75, 1]);
      expect(values(eye(2, 3, { device }))).toEqual([1, 0, 0, 0, 1, 0]);
    }));

  it("samples reproducibly under a seed and within range", () =>
    tidy(() => {
      manualSeed(123);
      const a = values(randn([1000], { device }));
      manualSeed(123);
      const b = values(randn([1000], { device }));
      expect(a).toEqual(b);
      const mean = a.reduce((s, x) => s + x, 0) / a.length;
      const variance = a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length;
      expect(Math.abs(mean)).toBeLessThan(0.15);
      expect(Math.abs(variance - 1)).toBeLessThan(0.2);
      const u = values(rand([1000], { device }));
      expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...u)).toBeLessThan(1);
      const r = values(randint(3, 6, [500], { device }));
      expect(new Set(r)).toEqual(new Set([3, 4, 5]));
      expect(() => randn([2], { dtype: "i64", device })).toThrow(TypeError);
    }));

  it("converts between every dtype and reads back", () =>
    tidy(() => {
      const source = tensor([0, 1, 2, 3], { device });
      for (const dtype of allDTypes) {
        const t = source.to(dtype);
        expect(t.dtype).toBe(dtype);
        const back = values(t);
        expect(back).toEqual(dtype === "bool" ? [0, 1, 1, 1] : [0, 1, 2, 3]);
      }
    }));

  it("widens bf16 and f16 to float32 on read, keeping their rounding", () =>
    tidy(() => {
      // 1 + 2^-10 is exact in f16 but rounds to 1 in bf16 (8 mantissa bits).
      const x = tensor([1 + 2 ** -10, 1.5, -2], { device });
      expect(values(x.to("f16"))).toEqual([1 + 2 ** -10, 1.5, -2]);
      expect(values(x.to("bf16"))).toEqual([1, 1.5, -2]);
      expect(x.to("bf16").toArray()).toBeInstanceOf(Float32Array);
    }));

  it("copies with clone and contiguous; to() changes dtype and device together", () =>
    tidy(() => {
      const x = tensor(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        { device },
      );
      const c = x.clone();
      c.add_(1);
      expect(values(x)).toEqual([1, 2, 3, 4, 5, 6]);
      const t = x.transpose(0, 1);
      expect(t.isContiguous).toBe(false);
      const tc = t.contiguous();
      expect(tc.isContiguous).toBe(true);
      expect(values(tc)).toEqual([1, 4, 2, 5, 3, 6]);
      const moved = x.to({ dtype: "f64", device: "cpu" });
      expect(moved.dtype).toBe("f64");
      expect(moved.device).toBe("cpu");
    }));
});

describe("device names", () => {
  it("rejects unknown devices and dtypes with TypeError", () => {
    expect(() => zeros([1], { device: "tpu" as "cpu" })).toThrow(TypeError);
    expect(() => zeros([1], { dtype: "f8" as "f32" })).toThrow(TypeError);
  });
});
