// Error conversion: libtorch failures become typed errors carrying the op name and libtorch's
// message (shape mismatch, bad dtype, bad index, unavailable device, disposed use); wrong JS
// argument types are TypeErrors; none of it crashes the process.
import { describe, expect, it } from "vitest";
import { native } from "../../src/native/addon.js";
import {
  crossEntropy,
  cuda,
  DeviceUnavailableError,
  InvalidArgumentError,
  isTorchError,
  ones,
  tensor,
  tidy,
  zeros,
} from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

describe("typed errors", () => {
  it("reports a shape mismatch as InvalidArgumentError with op and libtorch message", () =>
    tidy(() => {
      let caught: unknown;
      try {
        ones([2, 3]).matmul(ones([2, 3]));
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidArgumentError);
      const error = caught as InvalidArgumentError;
      expect(error.op).toBe("matmul");
      expect(error.torchMessage).toMatch(/cannot be multiplied/);
      expect(error.message).toMatch(/^matmul: /);
      expect(isTorchError(error)).toBe(true);
    }));

  it("reports bad dtypes, indices and dims", () =>
    tidy(() => {
      expect(() => ones([2]).logicalAnd(1.5).sum().item()).not.toThrow();
      expect(() => ones([3]).indexSelect(0, tensor([1.5]))).toThrow(InvalidArgumentError);
      expect(() => ones([3]).select(0, 5)).toThrow(/out of range|index 5/);
      expect(() => ones([3]).sum(4)).toThrow(InvalidArgumentError);
      expect(() => crossEntropy(ones([2, 3]), tensor([0n, 7n]))).toThrow(InvalidArgumentError);
      expect(() => ones([2, 2]).reshape(3)).toThrow(InvalidArgumentError);
    }));

  it("reports a missing device as DeviceUnavailableError", () => {
    if (cuda.isAvailable()) {
      expect(() => zeros([1], { device: "cuda:99" })).toThrow();
      return;
    }
    expect(() => zeros([1], { device: "cuda:0" })).toThrow(DeviceUnavailableError);
    expect(() => cuda.memory()).toThrow(DeviceUnavailableError);
  });

  it("turns wrong JS argument types into TypeError at the native boundary", () => {
    const addon = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    expect(() => addon.unary!(0, 42)).toThrow(TypeError);
    expect(() => addon.zeros!("3", 0, "cpu")).toThrow(TypeError);
    expect(() => addon.zeros!([1.5], 0, "cpu")).toThrow(TypeError);
    expect(() => addon.zeros!([2], 99, "cpu")).toThrow(TypeError);
    expect(() => addon.reshape!({}, [1])).toThrow(TypeError);
    expect(() => addon.unary!(9999, null)).toThrow(TypeError);
  });

  it("survives a long run of failing calls without leaking or crashing", () => {
    for (let i = 0; i < 200; i++) {
      tidy(() => {
        try {
          ones([2]).add(ones([3]));
        } catch {
          // expected
        }
      });
    }
    expect(tidy(() => ones([2]).sum().toNumber())).toBe(2);
  });
});
