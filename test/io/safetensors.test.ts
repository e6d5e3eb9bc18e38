// Covers src/io/safetensors.ts: save/load round trips of every dtype (0-dim, empty, non-contiguous, metadata),
// the on-disk format byte by byte (hand-built files read back, the writer's header parsed by hand), subsets by
// name, loading onto each device, and rejection of malformed files with a SafetensorsError naming file and problem.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadSafetensors, readSafetensorsHeader, SafetensorsError, saveSafetensors } from "../../src/io/safetensors.js";
import { type DType, type Tensor, tensor, tidy, zeros } from "../../src/tensor/index.js";
import { forEachDevice } from "../helpers/devices.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

let dir = "";
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-safetensors-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
const freshPath = (stem = "file"): string => join(dir, `${stem}-${counter++}.safetensors`);

// ---- independent encoders ----------------------------------------------------------------------

/** bf16 bits of a value exactly representable in bf16 (upper half of its f32 bits). */
function bf16Bits(x: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x, true);
  const bits = view.getUint32(0, true);
  if ((bits & 0xffff) !== 0) throw new Error(`${x} is not exactly representable in bf16`);
  return bits >>> 16;
}

/** IEEE half bits of a value exactly representable as a normal half (or zero). */
function f16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  let e = 0;
  while (2 ** (e + 1) <= a) e++;
  while (2 ** e > a) e--;
  const mantissa = (a / 2 ** e - 1) * 1024;
  if (!Number.isInteger(mantissa) || e < -14 || e > 15) throw new Error(`${x} is not a normal half`);
  return sign | ((e + 15) << 10) | mantissa;
}

/** Bytes of a host typed array (for exact comparisons, -0 and NaN included). */
const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A raw safetensors file: 8-byte LE header length, header text, data. */
function rawFile(header: unknown, data: Buffer = Buffer.alloc(0), options: { lengthOverride?: bigint; pad?: boolean } = {}): string {
  let text = typeof header === "string" ? header : JSON.stringify(header);
  if (options.pad) text += " ".repeat((8 - ((8 + Buffer.byteLength(text)) % 8)) % 8);
  const json = Buffer.from(text, "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(options.lengthOverride ?? BigInt(json.length));
  const file = freshPath("raw");
  writeFileSync(file, Buffer.concat([length, json, data]));
  return file;
}

/** Parses a file written by saveSafetensors by hand, following the format spec. */
function parseByHand(file: string): { headerLength: number; headerText: string; header: Record<string, any>; data: Buffer; total: number } {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const headerText = bytes.subarray(8, 8 + headerLength).toString("utf8");
  return { headerLength, headerText, header: JSON.parse(headerText), data: bytes.subarray(8 + headerLength), total: bytes.length };
}

function disposeAll(tensors: Map<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}

/** Expects loading `file` to throw a SafetensorsError for `file` whose problem matches `problem`. */
function expectRejected(file: string, problem: RegExp): void {
  let caught: unknown = null;
  try {
    const { tensors } = loadSafetensors(file);
    disposeAll(tensors);
  } catch (error) {
    caught = error;
  }
  expect(caught, "loadSafetensors should throw").toBeInstanceOf(SafetensorsError);
  const error = caught as SafetensorsError;
  expect(error._tag).toBe("SafetensorsError");
  expect(error.file).toBe(file);
  expect(error.problem).toMatch(problem);
  expect(error.message).toContain(file);
  expect(error.message).toMatch(problem);
}

// ---- fixtures --------------------------------------------------------------------------------

interface Case {
  name: string;
  dtype: DType;
  shape: number[];
  make: () => Tensor;
  /** Expected host array from toArray(). */
  expected: ArrayBufferView;
}

const f16Values = [1.5, -2, 0.25, 65504, 2 ** -14, -0, 1 + 2 ** -10];
const bf16Values = [1.5, -2, 0.25, 256, -(2 ** -7), 1 + 2 ** -7, 2 ** 100];
const f32Values = [Math.fround(Math.PI), -2, 0.25, Math.fround(1e-30), -0, Infinity, Math.fround(3.4e38)];
const f64Values = [Math.PI, -1e300, 5e-324, 0.1, -0, -Infinity];
const i64Values = [-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 123456789012345678n, 2n ** 53n + 1n];

const cases: Case[] = [
  { name: "f32", dtype: "f32", shape: [7], make: () => tensor(Float32Array.from(f32Values)), expected: Float32Array.from(f32Values) },
  {
    name: "f16",
    dtype: "f16",
    shape: [7],
    make: () => tensor(Float32Array.from(f16Values), { dtype: "f16" }),
    expected: Float32Array.from(f16Values),
  },
  {
    name: "bf16",
    dtype: "bf16",
    shape: [7, 1],
    make: () => tensor(Float32Array.from(bf16Values), { dtype: "bf16", shape: [7, 1] }),
    expected: Float32Array.from(bf16Values),
  },
  {
    name: "f64",
    dtype: "f64",
    shape: [2, 3],
    make: () => tensor(Float64Array.from(f64Values), { shape: [2, 3] }),
    expected: Float64Array.from(f64Values),
  },
  {
    name: "i64",
    dtype: "i64",
    shape: [3, 2],
    make: () => tensor(BigInt64Array.from(i64Values), { shape: [3, 2] }),
    expected: BigInt64Array.from(i64Values),
  },
  {
    name: "i32",
    dtype: "i32",
    shape: [4],
    make: () => tensor(Int32Array.from([-2147483648, 2147483647, 0, -1])),
    expected: Int32Array.from([-2147483648, 2147483647, 0, -1]),
  },
  {
    name: "i16",
    dtype: "i16",
    shape: [3],
    make: () => tensor(Int16Array.from([-32768, 32767, 1])),
    expected: Int16Array.from([-32768, 32767, 1]),
  },
  {
    name: "i8",
    dtype: "i8",
    shape: [1, 3],
    make: () => tensor(Int8Array.from([-128, 127, 0]), { shape: [1, 3] }),
    expected: Int8Array.from([-128, 127, 0]),
  },
  { name: "u8", dtype: "u8", shape: [3], make: () => tensor(Uint8Array.from([0, 255, 128])), expected: Uint8Array.from([0, 255, 128]) },
  {
    name: "bool",
    dtype: "bool",
    shape: [2, 2],
    make: () =>
      tensor([
        [true, false],
        [false, true],
      ]),
    expected: Uint8Array.from([1, 0, 0, 1]),
  },
  { name: "scalar_f32", dtype: "f32", shape: [], make: () => tensor(-7.25), expected: Float32Array.from([-7.25]) },
  { name: "scalar_i64", dtype: "i64", shape: [], make: () => tensor(-42n), expected: BigInt64Array.from([-42n]) },
  { name: "scalar_bf16", dtype: "bf16", shape: [], make: () => tensor(0.25, { dtype: "bf16" }), expected: Float32Array.from([0.25]) },
  { name: "empty_f32", dtype: "f32", shape: [0, 3], make: () => zeros([0, 3]), expected: new Float32Array(0) },
  { name: "empty_i16", dtype: "i16", shape: [2, 0], make: () => zeros([2, 0], { dtype: "i16" }), expected: new Int16Array(0) },
];

const fileDtypeName: Record<DType, string> = {
  f32: "F32",
  f16: "F16",
  bf16: "BF16",
  f64: "F64",
  i64: "I64",
  i32: "I32",
  i16: "I16",
  i8: "I8",
  u8: "U8",
  bool: "BOOL",
};
const itemBytes: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, f64: 8, i64: 8, i32: 4, i16: 2, i8: 1, u8: 1, bool: 1 };

/** The little-endian bytes a tensor of `c` must occupy in the file, built in JS. */
function expectedFileBytes(c: Case): Buffer {
  if (c.dtype === "f16" || c.dtype === "bf16") {
    const src = c.expected as Float32Array;
    const out = Buffer.alloc(src.length * 2);
    src.forEach((v, i) => out.writeUInt16LE(c.dtype === "f16" ? f16Bits(v) : bf16Bits(v), i * 2));
    return out;
  }
  return Buffer.from(bytesOf(c.expected)); // hosts are little-endian, as the format requires
}

// ---- tests -----------------------------------------------------------------------------------

describe("round trip", () => {
  test("every dtype, 0-dim and empty tensors, and metadata come back exactly", () => {
    const file = freshPath("all");
    const metadata = { format: "pt", note: "größe ✓", empty: "" };
    const made = new Map(cases.map((c) => [c.name, c.make()]));
    try {
      saveSafetensors(file, made, metadata);
    } finally {
      disposeAll(made);
    }
    const { tensors, metadata: loadedMetadata } = loadSafetensors(file);
    try {
      expect(loadedMetadata).toEqual(metadata);
      expect([...tensors.keys()].sort()).toEqual(cases.map((c) => c.name).sort());
      for (const c of cases) {
        const t = tensors.get(c.name)!;
        expect(t.dtype, c.name).toBe(c.dtype);
        expect(t.shape, c.name).toEqual(c.shape);
        expect(t.device, c.name).toBe("cpu");
        const host = t.toArray();
        expect(host.constructor, c.name).toBe(c.expected.constructor);
        expect(bytesOf(host).equals(bytesOf(c.expected)), `${c.name}: ${Array.from(host as ArrayLike<unknown>).join(",")}`).toBe(true);
      }
    } finally {
      disposeAll(tensors);
    }
  });

  test("f16 and bf16 values are stored as their exact half-precision bit patterns", () => {
    // Known constants as a check on the encoders themselves.
    expect(f16Bits(1.5)).toBe(0x3e00);
    expect(f16Bits(-2)).toBe(0xc000);
    expect(f16Bits(65504)).toBe(0x7bff);
    expect(bf16Bits(1.5)).toBe(0x3fc0);
    expect(bf16Bits(-2)).toBe(0xc000);
    expect(bf16Bits(0.25)).toBe(0x3e80);

    const file = freshPath("half");
    const halfCases = cases.filter((c) => c.dtype === "f16" || c.dtype === "bf16");
    const made = new Map(halfCases.map((c) => [c.name, c.make()]));
    try {
      saveSafetensors(file, made);
    } finally {
      disposeAll(made);
    }
    const { header, data } = parseByHand(file);
    for (const c of halfCases) {
      const [begin, end] = header[c.name].data_offsets as [number, number];
      expect(data.subarray(begin, end).equals(expectedFileBytes(c)), c.name).toBe(true);
    }
  });

  test("metadata is optional and loads as an empty object", () => {
    const file = freshPath("nometa");
    const t = tensor(Float32Array.from([1, 2]));
    try {
      saveSafetensors(file, { t });
    } finally {
      t.dispose();
    }
    expect("__metadata__" in parseByHand(file).header).toBe(false);
    const { tensors, metadata } = loadSafetensors(file);
    disposeAll(tensors);
    expect(metadata).toEqual({});
  });

  test("a non-contiguous tensor is written in logical (row-major) order", () => {
    const file = freshPath("transposed");
    const data = [1, 2, 3, 4, 5, 6]; // [[1,2,3],[4,5,6]]
    tidy(() => {
      const t = tensor(Float32Array.from(data), { shape: [2, 3] }).transpose(0, 1);
      expect(t.isContiguous).toBe(false);
      saveSafetensors(file, { t });
    });
    const { tensors } = loadSafetensors(file);
    try {
      const t = tensors.get("t")!;
      expect(t.shape).toEqual([3, 2]);
      expect(Array.from(t.toArray() as Float32Array)).toEqual([1, 4, 2, 5, 3, 6]);
    } finally {
      disposeAll(tensors);
    }
  });

  test("saving leaves no temporary file behind and replaces an existing file", () => {
    const sub = mkdtempSync(join(dir, "atomic-"));
    const file = join(sub, "model.safetensors");
    tidy(() => saveSafetensors(file, { a: tensor(Float32Array.from([1])) }));
    tidy(() => saveSafetensors(file, { b: tensor(Int32Array.from([7, 8])) }, { v: "2" }));
    expect(readdirSync(sub)).toEqual(["model.safetensors"]);
    const { tensors, metadata } = loadSafetensors(file);
    try {
      expect([...tensors.keys()]).toEqual(["b"]);
      expect(Array.from(tensors.get("b")!.toArray() as Int32Array)).toEqual([7, 8]);
      expect(metadata).toEqual({ v: "2" });
    } finally {
      disposeAll(tensors);
    }
  });

  test("a tensor named __metadata__ is refused by the writer", () => {
    const file = freshPath("reserved");
    const t = tensor(Float32Array.from([1]));
    try {
      expect(() => saveSafetensors(file, { __metadata__: t })).toThrow(/__metadata__/);
    } finally {
      t.dispose();
    }
  });
});

describe("format", () => {
  test("the writer's header is 8-byte aligned, space padded, and describes contiguous data as the spec says", () => {
    const file = freshPath("layout");
    const metadata = { clé: "välue ✓", n: "1" }; // multi-byte UTF-8, so byte and char lengths differ
    const made = new Map(cases.map((c) => [c.name, c.make()]));
    try {
      saveSafetensors(file, made, metadata);
    } finally {
      disposeAll(made);
    }
    const { headerLength, headerText, header, data, total } = parseByHand(file);
    expect((8 + headerLength) % 8).toBe(0);
    expect(headerText.startsWith("{")).toBe(true);
    expect(headerText.trimEnd().endsWith("}")).toBe(true);
    expect(/^ *$/.test(headerText.slice(headerText.trimEnd().length))).toBe(true);
    expect(header.__metadata__).toEqual(metadata);
    expect(
      Object.keys(header)
        .filter((k) => k !== "__metadata__")
        .sort(),
    ).toEqual(cases.map((c) => c.name).sort());

    // Every tensor's entry, and its bytes; together the ranges tile the data section with no gap.
    const ranges: [number, number][] = [];
    for (const c of cases) {
      const entry = header[c.name];
      expect(entry.dtype, c.name).toBe(fileDtypeName[c.dtype]);
      expect(entry.shape, c.name).toEqual(c.shape);
      const [begin, end] = entry.data_offsets as [number, number];
      expect(end - begin, c.name).toBe(c.shape.reduce((a, b) => a * b, 1) * itemBytes[c.dtype]);
      expect(data.subarray(begin, end).equals(expectedFileBytes(c)), c.name).toBe(true);
      ranges.push([begin, end]);
    }
    ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let cursor = 0;
    for (const [begin, end] of ranges) {
      expect(begin).toBe(cursor);
      cursor = end;
    }
    expect(cursor).toBe(data.length);
    expect(total).toBe(8 + headerLength + data.length);
  });

  test("a hand-built file (unaligned header, unsorted entries) loads with the values written", () => {
    const data = Buffer.alloc(2 * 2 + 3 * 4 + 2 * 2 + 8 + 2);
    let o = 0;
    data.writeInt16LE(-300, o);
    data.writeInt16LE(12345, o + 2);
    o += 4; // "b" I16 [2] at [0, 4)
    [0.5, -1.25, 1024].forEach((v, i) => data.writeFloatLE(v, o + 4 * i));
    o += 12; // "a" F32 [3, 1] at [4, 16)
    data.writeUInt16LE(0x3fc0, o); // bf16 1.5
    data.writeUInt16LE(0xc000, o + 2); // bf16 -2
    o += 4; // "h" BF16 [2] at [16, 20)
    data.writeBigInt64LE(-(2n ** 40n) - 3n, o);
    o += 8; // "s" I64 [] at [20, 28)
    data.writeUInt8(1, o);
    data.writeUInt8(0, o + 1); // "m" BOOL [1, 2] at [28, 30)
    const header = {
      h: { dtype: "BF16", shape: [2], data_offsets: [16, 20] },
      __metadata__: { format: "pt", epoch: "3" },
      a: { dtype: "F32", shape: [3, 1], data_offsets: [4, 16] },
      s: { dtype: "I64", shape: [], data_offsets: [20, 28] },
      b: { dtype: "I16", shape: [2], data_offsets: [0, 4] },
      m: { dtype: "BOOL", shape: [1, 2], data_offsets: [28, 30] },
      z: { dtype: "F64", shape: [0], data_offsets: [30, 30] },
    };
    let text = JSON.stringify(header);
    if ((8 + Buffer.byteLength(text)) % 8 === 0) text += " "; // keep the data section unaligned
    expect((8 + Buffer.byteLength(text)) % 8).not.toBe(0);
    const file = rawFile(text, data);

    const parsed = readSafetensorsHeader(file);
    expect(parsed.dataStart).toBe(8 + Buffer.byteLength(text));
    expect(parsed.entries.get("a")).toEqual({ name: "a", dtype: "f32", shape: [3, 1], begin: 4, end: 16 });

    const { tensors, metadata } = loadSafetensors(file);
    try {
      expect(metadata).toEqual({ format: "pt", epoch: "3" });
      expect([...tensors.keys()].sort()).toEqual(["a", "b", "h", "m", "s", "z"]);
      const read = (name: string) => tensors.get(name)!;
      expect(read("b").dtype).toBe("i16");
      expect(Array.from(read("b").toArray() as Int16Array)).toEqual([-300, 12345]);
      expect(read("a").shape).toEqual([3, 1]);
      expect(Array.from(read("a").toArray() as Float32Array)).toEqual([0.5, -1.25, 1024]);
      expect(read("h").dtype).toBe("bf16");
      expect(Array.from(read("h").toArray() as Float32Array)).toEqual([1.5, -2]);
      expect(read("s").shape).toEqual([]);
      expect(read("s").item()).toBe(-(2n ** 40n) - 3n);
      expect(read("m").dtype).toBe("bool");
      expect(read("m").toList()).toEqual([[true, false]]);
      expect(read("z").dtype).toBe("f64");
      expect(read("z").shape).toEqual([0]);
    } finally {
      disposeAll(tensors);
    }
  });

  test("a hand-built f16 tensor decodes from its bit patterns", () => {
    const bits = [0x3c00, 0xbc00, 0x3555, 0x0400, 0x7bff, 0x8000]; // 1, -1, 0.333..., 2^-14, 65504, -0
    const expected = [1, -1, 0.25 * (1 + 341 / 1024), 2 ** -14, 65504, -0];
    const data = Buffer.alloc(bits.length * 2);
    bits.forEach((b, i) => data.writeUInt16LE(b, 2 * i));
    const file = rawFile({ x: { dtype: "F16", shape: [2, 3], data_offsets: [0, data.length] } }, data, { pad: true });
    const { tensors } = loadSafetensors(file);
    try {
      const x = tensors.get("x")!;
      expect(x.dtype).toBe("f16");
      expect(x.shape).toEqual([2, 3]);
      expect(bytesOf(x.toArray()).equals(bytesOf(Float32Array.from(expected)))).toBe(true);
    } finally {
      disposeAll(tensors);
    }
  });
});

describe("subsets", () => {
  const build = (): string => {
    const file = freshPath("subset");
    tidy(() =>
      saveSafetensors(file, {
        first: tensor(Float32Array.from([1, 2, 3])),
        second: tensor(Int32Array.from([4, 5])),
        third: tensor(Float64Array.from([6.5])),
      }),
    );
    return file;
  };

  test("names selects only those tensors", () => {
    const file = build();
    const { tensors } = loadSafetensors(file, { names: ["third", "first"] });
    try {
      expect([...tensors.keys()].sort()).toEqual(["first", "third"]);
      expect(Array.from(tensors.get("first")!.toArray() as Float32Array)).toEqual([1, 2, 3]);
      expect(Array.from(tensors.get("third")!.toArray() as Float64Array)).toEqual([6.5]);
    } finally {
      disposeAll(tensors);
    }
  });

  test("an empty names list loads nothing", () => {
    const file = build();
    const { tensors } = loadSafetensors(file, { names: [] });
    expect(tensors.size).toBe(0);
  });

  test("a missing name is a SafetensorsError naming it", () => {
    const file = build();
    let caught: unknown = null;
    try {
      disposeAll(loadSafetensors(file, { names: ["first", "nope"] }).tensors);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SafetensorsError);
    expect((caught as SafetensorsError).file).toBe(file);
    expect((caught as SafetensorsError).problem).toMatch(/nope/);
  });
});

describe("malformed files", () => {
  const okEntry = { dtype: "F32", shape: [2], data_offsets: [0, 8] };
  const eight = Buffer.alloc(8);

  test("empty file", () => {
    const file = freshPath("empty");
    writeFileSync(file, Buffer.alloc(0));
    expectRejected(file, /0 bytes.*8-byte header length/);
  });

  test("file shorter than 8 bytes", () => {
    const file = freshPath("short");
    writeFileSync(file, Buffer.from([2, 0, 0, 0, 0]));
    expectRejected(file, /5 bytes.*shorter/);
  });

  test("header length past the end of the file", () => {
    const file = rawFile({ x: okEntry }, eight, { lengthOverride: 10_000n });
    expectRejected(file, /header length 10000 .*past the end/);
  });

  test("header length one byte past the end of the file", () => {
    const text = JSON.stringify({});
    const file = rawFile(text, Buffer.alloc(0), { lengthOverride: BigInt(text.length + 1) });
    expectRejected(file, new RegExp(`header length ${text.length + 1} .*past the end`));
  });

  test("header length 2^63", () => {
    const file = rawFile({ x: okEntry }, eight, { lengthOverride: 2n ** 63n });
    expectRejected(file, /header length 9223372036854775808/);
  });

  test("header length 2^64 - 1", () => {
    const file = rawFile({ x: okEntry }, eight, { lengthOverride: 2n ** 64n - 1n });
    expectRejected(file, /header length 18446744073709551615/);
  });

  test("zero-length header", () => {
    const file = rawFile("", eight);
    expectRejected(file, /does not start with '\{'/);
  });

  test("bad JSON", () => {
    expectRejected(rawFile('{"x": {"dtype": "F32",', eight), /not valid JSON/);
    expectRejected(rawFile("{'x': 1}", eight), /not valid JSON/);
  });

  test("header not an object", () => {
    for (const text of ["[1, 2]", "42", "null", '"x"', "true"]) {
      expectRejected(rawFile(text, eight), /does not start with '\{'/);
    }
  });

  test("tensor entry not an object", () => {
    expectRejected(rawFile({ x: [1, 2] }, eight), /tensor x: entry is not an object/);
  });

  test("missing or unknown dtype", () => {
    expectRejected(rawFile({ w: { dtype: "F8_E4M3", shape: [8], data_offsets: [0, 8] } }, eight), /tensor w: unsupported dtype F8_E4M3/);
    expectRejected(rawFile({ w: { dtype: "X", shape: [2], data_offsets: [0, 8] } }, eight), /tensor w: unsupported dtype X/);
    expectRejected(rawFile({ w: { dtype: "f32", shape: [2], data_offsets: [0, 8] } }, eight), /tensor w: unsupported dtype f32/);
    expectRejected(rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, eight), /tensor w: dtype is missing/);
  });

  test("shape not an array, or with a negative / fractional / non-number dim", () => {
    for (const shape of ["2", 2, null, { 0: 2 }, [2, -1], [-2], [1.5], ["2"]]) {
      expectRejected(rawFile({ w: { dtype: "F32", shape, data_offsets: [0, 8] } }, eight), /tensor w: shape/);
    }
  });

  test("data_offsets malformed", () => {
    for (const data_offsets of [[0], [0, 8, 8], "0,8", [-4, 4], [0, 8.5], null]) {
      expectRejected(rawFile({ w: { dtype: "F32", shape: [2], data_offsets } }, eight), /tensor w: data_offsets/);
    }
  });

  test("data_offsets reversed", () => {
    expectRejected(
      rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, eight),
      /tensor w: data_offsets \[8, 0\] are reversed/,
    );
  });

  test("data_offsets past the data section", () => {
    expectRejected(
      rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, eight),
      /tensor w: data_offsets \[4, 12\] run past the data section \(8 bytes\)/,
    );
    expectRejected(rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 12] } }, eight), /tensor w: .*past the data section/);
  });

  test("byte length not matching shape x itemsize", () => {
    const data = Buffer.alloc(16);
    expectRejected(rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, data), /tensor w: .*needs 12 bytes.*span 8/);
    expectRejected(rawFile({ w: { dtype: "BF16", shape: [2, 2], data_offsets: [0, 16] } }, data), /tensor w: .*needs 8 bytes.*span 16/);
    expectRejected(rawFile({ w: { dtype: "I64", shape: [], data_offsets: [0, 4] } }, data), /tensor w: .*needs 8 bytes.*span 4/);
    expectRejected(rawFile({ w: { dtype: "F32", shape: [0], data_offsets: [0, 4] } }, data), /tensor w: .*needs 0 bytes.*span 4/);
  });

  test("two tensors overlapping", () => {
    const data = Buffer.alloc(16);
    expectRejected(
      rawFile({ a: { dtype: "F32", shape: [3], data_offsets: [0, 12] }, b: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, data),
      /b .*overlaps a|a .*overlaps b/,
    );
    expectRejected(
      rawFile({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "I32", shape: [2], data_offsets: [0, 8] } }, data),
      /overlaps/,
    );
    // One tensor inside another.
    expectRejected(
      rawFile(
        { outer: { dtype: "F32", shape: [4], data_offsets: [0, 16] }, inner: { dtype: "I16", shape: [2], data_offsets: [4, 8] } },
        data,
      ),
      /inner .*overlaps outer/,
    );
  });

  test("an empty tensor between two overlapping ones does not hide the overlap", () => {
    // "big" covers [0, 16); "late" covers [8, 16) and so overlaps it; "nothing" is a zero-byte tensor at 4.
    const data = Buffer.alloc(16);
    const file = rawFile(
      {
        big: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
        nothing: { dtype: "F32", shape: [0], data_offsets: [4, 4] },
        late: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      },
      data,
    );
    // Under the format's strict tiling even the empty tensor inside "big" is refused (it comes first in offset order).
    expectRejected(file, /overlaps big/);
  });

  test("__metadata__ not an object, or with a non-string value", () => {
    expectRejected(
      rawFile({ __metadata__: { epoch: 3 }, w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, eight),
      /__metadata__\.epoch is not a string/,
    );
    expectRejected(rawFile({ __metadata__: { a: "ok", b: null } }, eight), /__metadata__\.b is not a string/);
    expectRejected(rawFile({ __metadata__: { nested: { x: "y" } } }, eight), /__metadata__\.nested is not a string/);
    expectRejected(rawFile({ __metadata__: ["a"] }, eight), /__metadata__ is not an object/);
    expectRejected(rawFile({ __metadata__: "pt" }, eight), /__metadata__ is not an object/);
  });

  test("nonexistent path", () => {
    const file = join(dir, "does-not-exist", "model.safetensors");
    expectRejected(file, /cannot open/);
  });

  test("a directory instead of a file", () => {
    const sub = mkdtempSync(join(dir, "adir-"));
    let caught: unknown = null;
    try {
      disposeAll(loadSafetensors(sub).tensors);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SafetensorsError);
    expect((caught as SafetensorsError).file).toBe(sub);
    expect((caught as SafetensorsError).message).toContain(sub);
  });

  test("readSafetensorsHeader rejects the same way without loading", () => {
    const file = rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, eight);
    expect(() => readSafetensorsHeader(file)).toThrow(SafetensorsError);
    expect(() => readSafetensorsHeader(file)).toThrow(/reversed/);
  });
});

forEachDevice("device loading", (device) => {
  test("loads onto the device with exact values", () => {
    const file = freshPath("device");
    const picked = cases.filter((c) => ["f32", "bf16", "i64", "bool", "scalar_f32", "empty_f32"].includes(c.name));
    const made = new Map(picked.map((c) => [c.name, c.make()]));
    try {
      saveSafetensors(file, made, { device });
    } finally {
      disposeAll(made);
    }
    const { tensors, metadata } = loadSafetensors(file, { device });
    try {
      expect(metadata).toEqual({ device });
      for (const c of picked) {
        const t = tensors.get(c.name)!;
        expect(t.device, c.name).toBe(device === "cuda" ? "cuda:0" : device);
        expect(t.dtype, c.name).toBe(c.dtype);
        expect(t.shape, c.name).toEqual(c.shape);
        expect(bytesOf(t.toArray()).equals(bytesOf(c.expected)), c.name).toBe(true);
      }
    } finally {
      disposeAll(tensors);
    }
  });

  test("saves tensors that live on the device", () => {
    const file = freshPath("from-device");
    tidy(() =>
      saveSafetensors(file, {
        w: tensor(Float32Array.from([1.5, -2, 0.25]), { device }),
        h: tensor(Float32Array.from([1.5, -2, 0.25]), { device, dtype: "bf16" }),
      }),
    );
    const { header, data } = parseByHand(file);
    const [wb, we] = header.w.data_offsets as [number, number];
    expect(data.subarray(wb, we).equals(bytesOf(Float32Array.from([1.5, -2, 0.25])))).toBe(true);
    const [hb, he] = header.h.data_offsets as [number, number];
    const hBytes = Buffer.alloc(6);
    [1.5, -2, 0.25].forEach((v, i) => hBytes.writeUInt16LE(bf16Bits(v), 2 * i));
    expect(data.subarray(hb, he).equals(hBytes)).toBe(true);
  });
});
