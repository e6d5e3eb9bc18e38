// Autograd surface: backward (implicit and explicit seeds, accumulation, retainGraph), .grad set/clear,
// retainGrad, isLeaf, detach, requiresGrad_ errors, noGrad/enableGrad/inferenceMode scoping (also on
// throw) and the functional grad() with gradOutputs, allowUnused and createGraph (second derivatives).
import { describe, expect, it } from "vitest";
import {
  type Device,
  enableGrad,
  grad,
  inferenceMode,
  InvalidArgumentError,
  isGradEnabled,
  isInferenceMode,
  isTorchError,
  noGrad,
  type Tensor,
  tensor,
  tidy,
} from "../../src/tensor/index.js";
import { forEachDevice } from "../helpers/devices.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { expectClose, values } from "../helpers/numeric.js";

const X = [0.5, -1.25, 2];

/** Returns what `fn` throws (fails the test when it does not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw");
}

class Boom extends Error {}

forEachDevice("autograd", (device: Device) => {
  useLeakCheck();
  const f64 = (data: number[], shape?: number[]) => tensor(Float64Array.from(data), { device, ...(shape ? { shape } : {}) });
  const leaf = (data: number[] = X) => f64(data).requiresGrad_();
  const gradOf = (t: Tensor): number[] => {
    const g = t.grad;
    if (g === null) throw new Error("expected a gradient, got null");
    return values(g);
  };

  describe("backward", () => {
    it("from a scalar without an explicit gradient", () =>
      tidy(() => {
        const x = leaf();
        x.square().sum().add(x.mul(3).sum()).backward();
        expectClose(
          gradOf(x),
          X.map((v) => 2 * v + 3),
          1e-12,
        );
      }));

    it("from a non-scalar with an explicit gradient", () =>
      tidy(() => {
        const x = leaf();
        const g = [1, 0.5, -2];
        x.square().backward(f64(g));
        expectClose(
          gradOf(x),
          X.map((v, i) => 2 * v * g[i]!),
          1e-12,
        );
      }));

    it("from a scalar with an explicit (scaling) gradient", () =>
      tidy(() => {
        const x = leaf();
        x.square()
          .sum()
          .backward(tensor(3, { dtype: "f64", device }));
        expectClose(
          gradOf(x),
          X.map((v) => 6 * v),
          1e-12,
        );
      }));

    it("from a non-scalar without a gradient raises a typed error", () =>
      tidy(() => {
        const x = leaf();
        const y = x.square();
        expect(thrown(() => y.backward())).toBeInstanceOf(InvalidArgumentError);
        expect(x.grad).toBeNull();
      }));

    it("accumulates over two backward calls with retainGraph", () =>
      tidy(() => {
        const x = leaf();
        const y = x.pow(3).sum();
        y.backward(undefined, { retainGraph: true });
        expectClose(
          gradOf(x),
          X.map((v) => 3 * v * v),
          1e-12,
        );
        y.backward();
        expectClose(
          gradOf(x),
          X.map((v) => 6 * v * v),
          1e-12,
        );
      }));

    it("a second backward through a freed graph raises a typed error", () =>
      tidy(() => {
        const x = leaf();
        const y = x.exp().sum();
        y.backward();
        const error = thrown(() => y.backward());
        expect(isTorchError(error)).toBe(true);
        // The failed call must not have changed the accumulated gradient.
        expectClose(gradOf(x), X.map(Math.exp), 1e-12);
      }));

    it("accumulates over two separate graphs", () =>
      tidy(() => {
        const x = leaf();
        x.square().sum().backward();
        x.mul(-4).sum().backward();
        expectClose(
          gradOf(x),
          X.map((v) => 2 * v - 4),
          1e-12,
        );
      }));

    it("reaches every leaf of a graph with several inputs", () =>
      tidy(() => {
        const a = leaf([1, 2]);
        const b = leaf([-3, 0.5]);
        a.mul(b).add(b.square()).sum().backward();
        expectClose(gradOf(a), [-3, 0.5], 1e-12);
        expectClose(gradOf(b), [1 + 2 * -3, 2 + 2 * 0.5], 1e-12);
      }));
  });

  describe(".grad", () => {
    it("is null before any backward", () =>
      tidy(() => {
        expect(leaf().grad).toBeNull();
      }));

    it("set to null clears it, and the next backward starts from zero", () =>
      tidy(() => {
        const x = leaf();
        x.square().sum().backward();
        expectClose(
          gradOf(x),
          X.map((v) => 2 * v),
          1e-12,
        );
        x.grad = null;
        expect(x.grad).toBeNull();
        x.square().sum().backward();
        expectClose(
          gradOf(x),
          X.map((v) => 2 * v),
          1e-12,
        );
      }));

    it("set to a tensor replaces it, and backward accumulates onto it", () =>
      tidy(() => {
        const x = leaf();
        x.grad = f64([10, 20, 30]);
        expectClose(gradOf(x), [10, 20, 30], 0);
        x.square().sum().backward();
        expectClose(
          gradOf(x),
          X.map((v, i) => [10, 20, 30][i]! + 2 * v),
          1e-12,
        );
      }));

    it("retainGrad keeps the gradient of a non-leaf", () =>
      tidy(() => {
        const x = leaf();
        const h = x.mul(3).retainGrad();
        const other = x.mul(2); // a non-leaf without retainGrad
        h.square().sum().add(other.sum()).backward();
        expectClose(
          gradOf(h),
          X.map((v) => 6 * v),
          1e-12,
        );
        expectClose(
          gradOf(x),
          X.map((v) => 18 * v + 2),
          1e-12,
        );
        expect(other.grad).toBeNull();
      }));
  });

  describe("leaves, detach and requiresGrad_", () => {
    it("isLeaf and requiresGrad for leaves, results and detached tensors", () =>
      tidy(() => {
        const x = leaf();
        const plain = f64([1, 2, 3]);
        const y = x.mul(2);
        expect(x.isLeaf).toBe(true);
        expect(x.requiresGrad).toBe(true);
        expect(plain.isLeaf).toBe(true);
        expect(plain.requiresGrad).toBe(false);
        expect(y.isLeaf).toBe(false);
        expect(y.requiresGrad).toBe(true);
        expect(plain.mul(2).isLeaf).toBe(true); // results that do not require grad are leaves
        const d = y.detach();
        expect(d.isLeaf).toBe(true);
        expect(d.requiresGrad).toBe(false);
        expect(noGrad(() => x.mul(2)).isLeaf).toBe(true);
      }));

    it("requiresGrad_(false) on a leaf turns gradient tracking off", () =>
      tidy(() => {
        const x = leaf();
        x.requiresGrad_(false);
        expect(x.requiresGrad).toBe(false);
        expect(x.mul(2).requiresGrad).toBe(false);
      }));

    it("detach stops gradients", () =>
      tidy(() => {
        const x = leaf();
        // d/dx sum(stop(x) * x) = stop(x) = x (not 2x)
        x.detach().mul(x).sum().backward();
        expectClose(gradOf(x), X, 1e-12);
      }));

    it("a graph made only of detached tensors cannot be back-propagated", () =>
      tidy(() => {
        const x = leaf();
        const y = x.detach().square().sum();
        expect(y.requiresGrad).toBe(false);
        expect(isTorchError(thrown(() => y.backward()))).toBe(true);
        expect(x.grad).toBeNull();
      }));

    it("requiresGrad_() on a non-leaf that already requires grad is a no-op, like torch", () =>
      tidy(() => {
        const y = leaf().mul(2);
        expect(y.requiresGrad_()).toBe(y);
        expect(y.requiresGrad).toBe(true);
        expect(y.isLeaf).toBe(false);
      }));

    it("requiresGrad_(false) on a non-leaf raises InvalidArgumentError", () =>
      tidy(() => {
        const y = leaf().mul(2);
        expect(thrown(() => y.requiresGrad_(false))).toBeInstanceOf(InvalidArgumentError);
        expect(y.requiresGrad).toBe(true);
      }));

    it("requiresGrad_() on an integer tensor raises InvalidArgumentError", () =>
      tidy(() => {
        const ids = tensor([1, 2, 3], { dtype: "i64", device });
        expect(thrown(() => ids.requiresGrad_())).toBeInstanceOf(InvalidArgumentError);
        expect(ids.requiresGrad).toBe(false);
      }));
  });

  describe("grad modes", () => {
    it("noGrad switches recording off and restores it", () =>
      tidy(() => {
        const x = leaf();
        expect(isGradEnabled()).toBe(true);
        const inside = noGrad(() => {
          expect(isGradEnabled()).toBe(false);
          return x.mul(2);
        });
        expect(inside.requiresGrad).toBe(false);
        expect(isGradEnabled()).toBe(true);
        expect(x.mul(2).requiresGrad).toBe(true);
      }));

    it("enableGrad inside noGrad records, and the outer noGrad resumes afterwards", () =>
      tidy(() => {
        const x = leaf();
        const [recorded, after] = noGrad(() => {
          const r = enableGrad(() => {
            expect(isGradEnabled()).toBe(true);
            return x.mul(2);
          });
          expect(isGradEnabled()).toBe(false);
          return [r, x.mul(2)] as const;
        });
        expect(recorded.requiresGrad).toBe(true);
        expect(after.requiresGrad).toBe(false);
        expect(isGradEnabled()).toBe(true);
        recorded.sum().backward();
        expectClose(gradOf(x), [2, 2, 2], 0);
      }));

    it("noGrad nested in noGrad stays off until the outer one exits", () => {
      noGrad(() => {
        noGrad(() => expect(isGradEnabled()).toBe(false));
        expect(isGradEnabled()).toBe(false);
      });
      expect(isGradEnabled()).toBe(true);
    });

    it("noGrad restores recording when its function throws", () => {
      expect(() =>
        noGrad(() => {
          throw new Boom("inside noGrad");
        }),
      ).toThrow(Boom);
      expect(isGradEnabled()).toBe(true);
    });

    it("enableGrad restores the outer noGrad when its function throws", () => {
      noGrad(() => {
        expect(() =>
          enableGrad(() => {
            throw new Boom("inside enableGrad");
          }),
        ).toThrow(Boom);
        expect(isGradEnabled()).toBe(false);
      });
      expect(isGradEnabled()).toBe(true);
    });

    it("noGrad returns the function's value", () => {
      expect(noGrad(() => 42)).toBe(42);
    });

    it("inferenceMode: on inside, outputs do not require grad, off afterwards", () =>
      tidy(() => {
        const x = leaf();
        expect(isInferenceMode()).toBe(false);
        const y = inferenceMode(() => {
          expect(isInferenceMode()).toBe(true);
          expect(isGradEnabled()).toBe(false);
          return x.mul(2);
        });
        expect(y.requiresGrad).toBe(false);
        expectClose(
          values(y),
          X.map((v) => 2 * v),
          0,
        );
        expect(isInferenceMode()).toBe(false);
        expect(isGradEnabled()).toBe(true);
        expect(x.mul(2).requiresGrad).toBe(true);
      }));

    it("inferenceMode is restored after a throw (also when nested)", () => {
      expect(() =>
        inferenceMode(() => {
          throw new Boom("inside inferenceMode");
        }),
      ).toThrow(Boom);
      expect(isInferenceMode()).toBe(false);
      expect(isGradEnabled()).toBe(true);
      inferenceMode(() => {
        expect(() =>
          inferenceMode(() => {
            throw new Boom("inner");
          }),
        ).toThrow(Boom);
        expect(isInferenceMode()).toBe(true);
      });
      expect(isInferenceMode()).toBe(false);
    });

    it("inferenceMode inside noGrad and noGrad inside inferenceMode", () => {
      noGrad(() => {
        inferenceMode(() => expect(isInferenceMode()).toBe(true));
        expect(isInferenceMode()).toBe(false);
        expect(isGradEnabled()).toBe(false);
      });
      inferenceMode(() => {
        noGrad(() => expect(isInferenceMode()).toBe(true));
        expect(isInferenceMode()).toBe(true);
      });
      expect(isGradEnabled()).toBe(true);
      expect(isInferenceMode()).toBe(false);
    });
  });

  describe("grad()", () => {
    it("returns gradients for the chosen inputs only and leaves .grad untouched", () =>
      tidy(() => {
        const x = leaf();
        const w = leaf([3, -1, 0.25]);
        const y = x.mul(w).sum().add(x.square().sum());
        const [gw] = grad(y, [w], { retainGraph: true });
        expectClose(values(gw!), X, 1e-12);
        const [gx, gw2] = grad(y, [x, w]);
        expectClose(
          values(gx!),
          X.map((v, i) => [3, -1, 0.25][i]! + 2 * v),
          1e-12,
        );
        expectClose(values(gw2!), X, 1e-12);
        expect(x.grad).toBeNull();
        expect(w.grad).toBeNull();
      }));

    it("seeds a non-scalar output with gradOutputs", () =>
      tidy(() => {
        const x = leaf();
        const g = [2, -1, 0.5];
        const [gx] = grad(x.pow(3), [x], { gradOutputs: [f64(g)] });
        expectClose(
          values(gx!),
          X.map((v, i) => 3 * v * v * g[i]!),
          1e-12,
        );
      }));

    it("sums over several outputs, each with its own gradOutput", () =>
      tidy(() => {
        const x = leaf();
        const g1 = [1, 2, 3];
        const g2 = [-1, 0.5, 4];
        const [gx] = grad([x.square(), x.mul(5)], [x], { gradOutputs: [f64(g1), f64(g2)] });
        expectClose(
          values(gx!),
          X.map((v, i) => 2 * v * g1[i]! + 5 * g2[i]!),
          1e-12,
        );
      }));

    it("allowUnused returns null for an input the output does not depend on", () =>
      tidy(() => {
        const x = leaf();
        const unused = leaf([1, 2]);
        const [gx, gu] = grad(x.square().sum(), [x, unused], { allowUnused: true });
        expectClose(
          values(gx!),
          X.map((v) => 2 * v),
          1e-12,
        );
        expect(gu).toBeNull();
      }));

    it("an unused input without allowUnused raises a typed error", () =>
      tidy(() => {
        const x = leaf();
        const unused = leaf([1, 2]);
        expect(thrown(() => grad(x.square().sum(), [x, unused]))).toBeInstanceOf(InvalidArgumentError);
      }));

    it("without retainGraph the graph is freed after one call", () =>
      tidy(() => {
        const x = leaf();
        const y = x.exp().sum();
        grad(y, [x]);
        expect(isTorchError(thrown(() => grad(y, [x])))).toBe(true);
      }));

    it("createGraph gives a differentiable first derivative: d2/dx2 x^3 = 6x", () =>
      tidy(() => {
        const x = leaf();
        const [dx] = grad(x.pow(3).sum(), [x], { createGraph: true });
        expect(dx!.requiresGrad).toBe(true);
        expectClose(
          values(dx!),
          X.map((v) => 3 * v * v),
          1e-12,
        );
        const [d2x] = grad(dx!.sum(), [x]);
        expectClose(
          values(d2x!),
          X.map((v) => 6 * v),
          1e-12,
        );
      }));

    it("without createGraph the first derivative does not require grad", () =>
      tidy(() => {
        const x = leaf();
        const [dx] = grad(x.pow(3).sum(), [x]);
        expect(dx!.requiresGrad).toBe(false);
      }));

    it("backward with createGraph builds a differentiable .grad: d2/dx2 x^3 = 6x at a scalar", () =>
      tidy(() => {
        const x = tensor(1.5, { dtype: "f64", device }).requiresGrad_();
        x.pow(3).backward(undefined, { createGraph: true });
        const first = x.grad!;
        expect(first.toNumber()).toBeCloseTo(3 * 1.5 * 1.5, 12);
        expect(first.requiresGrad).toBe(true);
        const [second] = grad(first, [x]);
        expect(second!.toNumber()).toBeCloseTo(6 * 1.5, 12);
        x.grad = null; // break the x <-> x.grad reference cycle that createGraph makes
      }));
  });
});
