// decodeLinear (the decode-step projection, native/src/decode.cc and skinny-gemm.cc) against dot products
// computed here in float64 JS: f32 with <= 64 rows (the AVX2 kernel on x86-64 hosts, on both libtorch
// versions; else the libtorch 2.x product paths): every remainder of its 4-row x 3-output tile and of its
// 8-float lanes, with and without bias, 2-D/3-D and non-contiguous inputs, tall weights; and inputs it
// must hand to linear (65 rows, float64, a transposed weight, inputs that need gradients, whose
// gradients are checked).
import { describe, expect, it } from "vitest";
import { decodeLinear } from "../../src/nn/decode-linear.js";
import { native } from "../../src/native/addon.js";
import { enableGrad, type DType, numThreads, setNumThreads, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { expectClose, seededValues, values } from "../helpers/numeric.js";

useLeakCheck();

/** x [rows, in] @ w[out, in]^T + b, in float64. */
function reference(x: number[], w: number[], b: number[] | null, rows: number, inFeatures: number, out: number): number[] {
  const result: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let sum = b ? b[o]! : 0;
      for (let i = 0; i < inFeatures; i++) sum += x[r * inFeatures + i]! * w[o * inFeatures + i]!;
      result.push(sum);
    }
  }
  return result;
}

describe("decodeLinear equals x w^T + b", () => {
  const cases: [name: string, shape: number[], out: number, bias: boolean, dtype: DType][] = [
    ["8 rows x 600 outputs (fast path)", [8, 1, 48], 600, false, "f32"],
    ["3 rows x 640 outputs with bias (fast path)", [3, 48], 640, true, "f32"],
    ["64 rows x 512 outputs with bias (fast path limit)", [2, 32, 16], 512, true, "f32"],
    ["32 rows x 20000 outputs with bias (tall weight, blocks of 4096 weight rows)", [32, 16], 20000, true, "f32"],
    ["2 x 9 rows x 16384 outputs (blocks, no remainder)", [2, 9, 16], 16384, false, "f32"],
    ["17 rows x 16385 outputs (blocks, a last block of one row)", [17, 1, 16], 16385, false, "f32"],
    ["16 rows x 20000 outputs (tall weight, one product)", [16, 16], 20000, true, "f32"],
    ["1 row x 1 output x 1 input", [1, 1], 1, true, "f32"],
    ["5 rows x 7 outputs x 13 inputs (every remainder)", [5, 13], 7, true, "f32"],
    ["6 rows x 8 outputs x 35 inputs", [2, 3, 35], 8, false, "f32"],
    ["7 rows x 3001 outputs x 136 inputs with bias", [7, 1, 136], 3001, true, "f32"],
    ["32 rows x 1000 outputs x 896 inputs (a decode shape, several threads' ranges)", [32, 1, 896], 1000, true, "f32"],
    ["64 rows x 97 outputs x 257 inputs (the row limit)", [64, 257], 97, false, "f32"],
    ["65 rows (plain linear)", [65, 16], 512, true, "f32"],
    ["narrow weight (plain linear)", [4, 1, 48], 24, true, "f32"],
    ["float64 (plain linear)", [4, 1, 16], 600, true, "f64"],
  ];
  it.each(cases)("%s", (_name, shape, out, withBias, dtype) => {
    const inFeatures = shape[shape.length - 1]!;
    const rows = shape.reduce((a, b) => a * b, 1) / inFeatures;
    const x = seededValues(rows * inFeatures, 1);
    const w = seededValues(out * inFeatures, 2);
    const b = withBias ? seededValues(out, 3) : null;
    tidy(() => {
      const y = decodeLinear(tensor(x, { shape, dtype }), tensor(w, { shape: [out, inFeatures], dtype }), b ? tensor(b, { dtype }) : null);
      expect(y.shape).toEqual([...shape.slice(0, -1), out]);
      expect(y.dtype).toBe(dtype);
      expect(y.isContiguous).toBe(true);
      // f32 sums of a few hundred terms near cancellation: 1e-4 relative to max(1, |exact|) there.
      expectClose(values(y), reference(x, w, b, rows, inFeatures, out), dtype === "f64" ? 1e-12 : inFeatures > 256 ? 1e-4 : 1e-5);
    });
  });
});

describe("decodeLinear beyond the plain cases", () => {
  it("reads a non-contiguous input (the last position of a [batch, pos, in] tensor)", () => {
    const [batch, pos, inFeatures, out] = [4, 5, 24, 10];
    const x = seededValues(batch * pos * inFeatures, 4);
    const w = seededValues(out * inFeatures, 5);
    const last: number[] = [];
    for (let b = 0; b < batch; b++) last.push(...x.slice((b * pos + pos - 1) * inFeatures, (b * pos + pos) * inFeatures));
    tidy(() => {
      const input = tensor(x, { shape: [batch, pos, inFeatures] }).narrow(1, pos - 1, 1);
      expect(input.isContiguous).toBe(false);
      const y = decodeLinear(input, tensor(w, { shape: [out, inFeatures] }));
      expect(y.shape).toEqual([batch, 1, out]);
      expectClose(values(y), reference(last, w, null, batch, inFeatures, out), 1e-5);
    });
  });

  it("takes a transposed (non-contiguous) weight through linear", () => {
    const [rows, inFeatures, out] = [3, 20, 11];
    const x = seededValues(rows * inFeatures, 6);
    const wt = seededValues(inFeatures * out, 7); // [in, out]
    const w: number[] = [];
    for (let o = 0; o < out; o++) for (let i = 0; i < inFeatures; i++) w.push(wt[i * out + o]!);
    tidy(() => {
      const weight = tensor(wt, { shape: [inFeatures, out] }).transpose(0, 1);
      expect(weight.isContiguous).toBe(false);
      expectClose(
        values(decodeLinear(tensor(x, { shape: [rows, inFeatures] }), weight)),
        reference(x, w, null, rows, inFeatures, out),
        1e-5,
      );
    });
  });

  it("keeps the autograd graph when an input needs gradients (d/dx sum(y) = column sums of w, d/dw = row sums of x)", () => {
    const [rows, inFeatures, out] = [4, 9, 6];
    const x = seededValues(rows * inFeatures, 8);
    const w = seededValues(out * inFeatures, 9);
    tidy(() =>
      enableGrad(() => {
        const input = tensor(x, { shape: [rows, inFeatures] }).requiresGrad_();
        const weight = tensor(w, { shape: [out, inFeatures] }).requiresGrad_();
        decodeLinear(input, weight).sum().backward();
        const dx = Array.from({ length: rows * inFeatures }, (_, k) => {
          let s = 0;
          for (let o = 0; o < out; o++) s += w[o * inFeatures + (k % inFeatures)]!;
          return s;
        });
        const dw = Array.from({ length: out * inFeatures }, (_, k) => {
          let s = 0;
          for (let r = 0; r < rows; r++) s += x[r * inFeatures + (k % inFeatures)]!;
          return s;
        });
        expectClose(values(input.grad!), dx, 1e-5);
        expectClose(values(weight.grad!), dw, 1e-5);
      }),
    );
  });

  it("gives the same result on one thread and on several", () => {
    const [rows, inFeatures, out] = [8, 64, 3000];
    const x = seededValues(rows * inFeatures, 10);
    const w = seededValues(out * inFeatures, 11);
    const before = numThreads();
    try {
      const run = (threads: number) => {
        setNumThreads(threads);
        return tidy(() => values(decodeLinear(tensor(x, { shape: [rows, inFeatures] }), tensor(w, { shape: [out, inFeatures] }))));
      };
      const one = run(1);
      expect(run(2)).toEqual(one);
      expectClose(one, reference(x, w, null, rows, inFeatures, out), 1e-5);
    } finally {
      setNumThreads(before);
    }
  });

  it("the addon's own at::parallel_for runs on libtorch's intra-op threads (it is built with -fopenmp)", () => {
    const before = numThreads();
    try {
      setNumThreads(2);
      expect(native.addonParallelThreads()).toBe(2);
    } finally {
      setNumThreads(before);
    }
  });
});
