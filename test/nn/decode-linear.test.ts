// decodeLinear (the decode-step projection, native/src/decode.cc) against dot products computed here in
// float64 JS: shapes that take the fast path on libtorch 2.x (few rows, >= 512 outputs; with and without
// bias, 2-D and 3-D inputs; a tall weight with > 16 rows computed block by block) and shapes that fall back to linear (many rows, narrow weights, float64).
import { describe, expect, it } from "vitest";
import { decodeLinear } from "../../src/nn/decode-linear.js";
import { type DType, tensor, tidy } from "../../src/tensor/index.js";
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
      expectClose(values(y), reference(x, w, b, rows, inFeatures, out), dtype === "f64" ? 1e-12 : 1e-5);
    });
  });
});
