// torch.save files read by libtorch's unpickler (no Python): fixtures written by real PyTorch
// (test/fixtures/study/make_steering_pt.py, torch 2.x: zip and legacy formats, nn.Parameters, APPEND /
// SETITEM pickles) against the values that script wrote to expected.json; the study's steering_vector.pt
// layout; refused files name the file.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadDirection, loadSteeringVector, readSteeringVectorFile, readTorchSteeringVector } from "../../src/analysis/files.js";
import { disposeTorchValue, loadTorchFile, TorchFileError, type TorchValue } from "../../src/io/torch-file.js";
import { type Tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const DIR = "test/fixtures/study";
const expected = JSON.parse(readFileSync(`${DIR}/expected.json`, "utf8")) as { vector: number[]; base: number[][]; bf16: number[] };
const values = (t: unknown): number[] => tidy(() => Array.from((t as Tensor).to("f64").flatten().toArray() as Float64Array));

describe("loadTorchFile", () => {
  useLeakCheck();

  it("reads a torch 2.x zip file: nested dicts (str and int keys), lists, tuples, None, bools, f64 / i64 / bf16 tensors, a transposed view", () => {
    const tree = loadTorchFile(`${DIR}/tree.pt`);
    try {
      expect(tree).toBeInstanceOf(Map);
      const root = tree as Map<string | number, unknown>;
      expect([...root.keys()]).toEqual(["weights", "bf16", 7, "list", "tuple", "single", "onekey"]);
      const weights = root.get("weights") as Map<string, Tensor>;
      const a = weights.get("a")!;
      expect(a.dtype).toBe("f64");
      expect(a.shape).toEqual([3, 4]);
      expect(values(a)).toEqual(expected.base.flat());
      const bt = weights.get("b_t")!;
      expect(bt.shape).toEqual([4, 3]);
      // The transpose of base, element by element.
      expect(values(bt)).toEqual(Array.from({ length: 12 }, (_, k) => expected.base[k % 3]![Math.floor(k / 3)]!));
      const ids = weights.get("ids")!;
      expect(ids.dtype).toBe("i64");
      expect(values(ids)).toEqual([3, -1, 7]);
      const bf16 = root.get("bf16") as Tensor;
      expect(bf16.dtype).toBe("bf16");
      expect(values(bf16)).toEqual(expected.bf16);
      expect(root.get(7)).toBe("seven");
      expect(root.get("list")).toEqual([1, 2.5, true, null]);
      const tuple = root.get("tuple") as unknown[];
      expect(values(tuple[0])).toEqual([0.5]);
      expect(tuple[1]).toBe("x");
      // A one-element list and a one-key dict pickle with APPEND / SETITEM, which libtorch 1.13 lacks.
      const single = root.get("single") as Tensor[];
      expect(single.length).toBe(1);
      expect(values(single[0])).toEqual([1, 1]);
      expect([...(root.get("onekey") as Map<string, unknown>)]).toEqual([["k", 5]]);
    } finally {
      disposeTorchValue(tree);
    }
  });

  it("reads the legacy (pre-1.6) format: storages of several dtypes, a view sharing a storage, a Parameter, a one-element list", () => {
    const legacy = loadTorchFile(`${DIR}/legacy.pt`) as Map<string, TorchValue>;
    try {
      values(legacy.get("v")).forEach((v, i) => expect(Math.abs(v - expected.vector[i]!)).toBeLessThanOrEqual(1e-7));
    } finally {
      disposeTorchValue(legacy);
    }
    const tree = loadTorchFile(`${DIR}/legacy_tree.pt`) as Map<string, TorchValue>;
    try {
      expect([...tree.keys()]).toEqual(["a", "b_t", "ids", "bf16", "param", "single"]);
      expect(values(tree.get("a"))).toEqual(expected.base.flat());
      expect(values(tree.get("b_t"))).toEqual(Array.from({ length: 12 }, (_, k) => expected.base[k % 3]![Math.floor(k / 3)]!));
      expect((tree.get("ids") as Tensor).dtype).toBe("i64");
      expect(values(tree.get("ids"))).toEqual([3, -1, 7]);
      expect((tree.get("bf16") as Tensor).dtype).toBe("bf16");
      expect(values(tree.get("bf16"))).toEqual(expected.bf16);
      expect(values(tree.get("param"))).toEqual([0, 1, 2, 3]);
      expect(values((tree.get("single") as Tensor[])[0])).toEqual([1, 1]);
    } finally {
      disposeTorchValue(tree);
    }
  });

  it("refuses non-torch files and missing files with a TorchFileError naming the file", () => {
    for (const [file, pattern] of [
      [`${DIR}/expected.json`, /not a torch\.save file/],
      [`${DIR}/missing.pt`, /cannot open/],
    ] as const) {
      let error: unknown;
      try {
        loadTorchFile(file);
      } catch (e) {
        error = e;
      }
      expect(error, file).toBeInstanceOf(TorchFileError);
      expect((error as Error).message).toContain(file);
      expect((error as Error).message).toMatch(pattern);
    }
  });

  it("nn.Parameters (unknown to libtorch 1.13's unpickler) load as their tensors, also memoised globals and repeated references", () => {
    const tree = loadTorchFile(`${DIR}/parameters.pt`) as Map<string, TorchValue>;
    try {
      expect([...tree.keys()]).toEqual(["first", "second", "again", "flag"]);
      expect(values(tree.get("first"))).toEqual([0, 1, 2, 3]);
      expect((tree.get("second") as Tensor).shape).toEqual([2, 3]);
      expect(values(tree.get("second"))).toEqual([1, 1, 1, 1, 1, 1]);
      expect(values(tree.get("again"))).toEqual([0, 1, 2, 3]);
      expect(tree.get("flag")).toBe(true);
    } finally {
      disposeTorchValue(tree);
    }
    const read = readTorchSteeringVector(`${DIR}/steering_vector_param.pt`);
    try {
      expect([read.layer, read.alpha]).toEqual([2, 4]);
      values(read.vector).forEach((v, i) => expect(Math.abs(v - 2 * expected.vector[i]!)).toBeLessThanOrEqual(2e-7));
    } finally {
      read.vector.dispose();
    }
  });
});

describe("the study's steering_vector.pt", () => {
  useLeakCheck();

  it("gives the vector, layer_idx and alpha as PyTorch saved them; the site is down_proj", () => {
    const read = readTorchSteeringVector(`${DIR}/steering_vector.pt`);
    try {
      expect(read.layer).toBe(1);
      expect(read.alpha).toBe(256);
      expect(read.site).toBe("down_proj");
      expect(read.vector.dtype).toBe("f32");
      const got = values(read.vector);
      expect(got.length).toBe(32);
      got.forEach((v, i) => expect(Math.abs(v - expected.vector[i]!)).toBeLessThanOrEqual(1e-7));
    } finally {
      read.vector.dispose();
    }
    const byExtension = readSteeringVectorFile(`${DIR}/steering_vector.pt`);
    expect(byExtension.alpha).toBe(256);
    byExtension.vector.dispose();
    const direction = loadDirection(`${DIR}/steering_vector.pt`);
    expect(direction.shape).toEqual([32]);
    direction.dispose();
  });

  it("loadSteeringVector checks the model: hidden size and layer range are errors naming the file", () => {
    const decoder = { numLayers: 3, spec: { hiddenSize: 16 }, device: "cpu" } as never;
    expect(() => loadSteeringVector(`${DIR}/steering_vector.pt`, decoder)).toThrow(
      /steering_vector\.pt: vector has shape \[32\], the model needs \[16\]/,
    );
    const small = { numLayers: 1, spec: { hiddenSize: 32 }, device: "cpu" } as never;
    expect(() => loadSteeringVector(`${DIR}/steering_vector.pt`, small)).toThrow(/layer 1 is not a layer of this model \(0\.\.0\)/);
    const ok = { numLayers: 3, spec: { hiddenSize: 32 }, device: "cpu" } as never;
    const sv = loadSteeringVector(`${DIR}/steering_vector.pt`, ok, { alpha: 2 });
    expect([sv.layer, sv.alpha, sv.site]).toEqual([1, 2, "down_proj"]);
    sv.dispose();
  });
});
