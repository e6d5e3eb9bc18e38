// Property-based tests of the safetensors reader (src/io/safetensors.ts): (1) any map of tensors (names drawn from
// arbitrary strings, Object.prototype keys included; every dtype; small shapes, empty ones included) survives a
// save/load round trip bit for bit; (2) any mutation of a valid file (byte flips in header and data, truncation,
// appended bytes, a rewritten length) is either refused with a SafetensorsError or read as a header whose tensors
// tile the data section exactly: never another error type, never a header that points outside the file.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSafetensors, readSafetensorsHeader, SafetensorsError, saveSafetensors } from "../../src/io/safetensors.js";
import { type DType, itemSize, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { native } from "../../src/native/addon.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { FUZZ_SEED, fuzzRuns } from "./budget.js";
import { handleOf } from "../../src/tensor/internal.js";

useLeakCheck();

let dir = "";
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-fuzz-safetensors-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fresh = (): string => join(dir, `f${counter++}.safetensors`);

const DTYPES: DType[] = ["f32", "f64", "i64", "i32", "i16", "i8", "u8", "bool", "f16", "bf16"];

/** Random bytes that are a valid value of `dtype` (f16/bf16 from whole bytes: any bit pattern is a value). */
const tensorArb = fc
  .record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }) })
  .chain(({ dtype, shape }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = n * itemSize(dtype);
    const content =
      dtype === "bool"
        ? fc.array(fc.constantFrom(0, 1), { minLength: n, maxLength: n })
        : fc.uint8Array({ minLength: bytes, maxLength: bytes });
    return content.map((data) => ({ dtype, shape, data: Uint8Array.from(data as ArrayLike<number>) }));
  });

const nameArb = fc.oneof(
  fc.string({ minLength: 1, maxLength: 12 }),
  fc.constantFrom("constructor", "__proto__", "toString", "hasOwnProperty", "ü-名前"),
);

/** A tensor holding exactly `bytes` as `dtype` (typed arrays per dtype; f16/bf16 through their raw 16-bit patterns). */
function fromBytes(dtype: DType, shape: number[], bytes: Uint8Array): Tensor {
  const buffer = bytes.slice().buffer;
  switch (dtype) {
    case "f32":
      return tensor(new Float32Array(buffer), { shape });
    case "f64":
      return tensor(new Float64Array(buffer), { shape });
    case "i64":
      return tensor(new BigInt64Array(buffer), { shape });
    case "i32":
      return tensor(new Int32Array(buffer), { shape });
    case "i16":
      return tensor(new Int16Array(buffer), { shape });
    case "i8":
      return tensor(new Int8Array(buffer), { shape });
    case "u8":
      return tensor(new Uint8Array(buffer), { shape });
    case "bool":
      return tensor(new Uint8Array(buffer), { shape }).to("bool");
    case "f16":
    case "bf16": {
      // Reinterpret the 16-bit patterns: save as i16, then read back with the dtype rewritten in the header.
      return tensor(new Int16Array(buffer), { shape });
    }
  }
}

describe("safetensors round trip (property)", () => {
  it("any set of named tensors of any dtype reads back with the same names, dtypes, shapes and bytes", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(nameArb, tensorArb), { maxLength: 5, selector: ([name]) => name }), (entries) => {
        const named = entries.filter(([name]) => name !== "__metadata__");
        const file = fresh();
        tidy(() => {
          saveSafetensors(file, new Map(named.map(([name, t]) => [name, fromBytes(t.dtype, t.shape, t.data)])));
        });
        const header = readSafetensorsHeader(file);
        expect([...header.entries.keys()].sort()).toEqual(named.map(([n]) => n).sort());
        const { tensors } = loadSafetensors(file);
        try {
          for (const [name, t] of named) {
            const got = tensors.get(name)!;
            const stored = t.dtype === "f16" || t.dtype === "bf16" ? "i16" : t.dtype;
            expect(got.dtype).toBe(stored);
            expect(got.shape).toEqual(t.shape);
            expect(Buffer.from(native.rawBytes(handleOf(got)))).toEqual(Buffer.from(t.data));
          }
        } finally {
          for (const t of tensors.values()) t.dispose();
        }
        rmSync(file);
      }),
      { numRuns: fuzzRuns(40), seed: FUZZ_SEED },
    );
  });
});

type Mutation =
  | { kind: "flip"; at: number; value: number }
  | { kind: "truncate"; at: number }
  | { kind: "append"; bytes: number[] }
  | { kind: "length"; value: bigint }
  | { kind: "header-text"; from: string; to: string };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("length" as const), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  fc.record({
    kind: fc.constant("header-text" as const),
    from: fc.constantFrom('"F32"', '"shape":[', '"data_offsets":[', '"b"', "]", ","),
    to: fc.constantFrom('"I32"', '"constructor"', '"shape":[-1,', '"data_offsets":[4,', '"a"', "],", ",,", '"F64"', ""),
  }),
);

function applyMutation(original: Buffer, m: Mutation): Buffer {
  const bytes = Buffer.from(original);
  switch (m.kind) {
    case "flip":
      if (bytes.length > 0) bytes[m.at % bytes.length] = m.value;
      return bytes;
    case "truncate":
      return bytes.subarray(0, bytes.length > 0 ? m.at % bytes.length : 0);
    case "append":
      return Buffer.concat([bytes, Buffer.from(m.bytes)]);
    case "length":
      if (bytes.length < 8) return bytes;
      bytes.writeBigUInt64LE(m.value, 0);
      return bytes;
    case "header-text": {
      if (bytes.length < 8 || bytes.readBigUInt64LE(0) > BigInt(bytes.length - 8)) return bytes;
      const n = Number(bytes.readBigUInt64LE(0));
      const header = bytes
        .subarray(8, 8 + n)
        .toString("utf8")
        .replace(m.from, m.to);
      const json = Buffer.from(header, "utf8");
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([length, json, bytes.subarray(8 + n)]);
    }
  }
}

describe("mutated safetensors files (property)", () => {
  let valid: Buffer;
  beforeAll(() => {
    const file = fresh();
    tidy(() =>
      saveSafetensors(
        file,
        { a: tensor(Float32Array.from([1, 2, 3, 4]), { shape: [2, 2] }), b: tensor(Int32Array.from([7, 8])) },
        { note: "x" },
      ),
    );
    valid = readFileSync(file);
  });

  it("are refused with a SafetensorsError or read as a header that tiles the file exactly", () => {
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (mutations) => {
        const file = fresh();
        writeFileSync(file, mutations.reduce(applyMutation, valid));
        try {
          const header = readSafetensorsHeader(file);
          accepted++;
          const size = statSync(file).size;
          let end = 0;
          for (const e of header.entries.values()) {
            expect(e.end - e.begin).toBe(e.shape.reduce((a, b) => a * b, 1) * itemSize(e.dtype));
            end = Math.max(end, e.end);
          }
          expect(header.dataStart + end).toBe(size);
          const { tensors } = loadSafetensors(file);
          for (const t of tensors.values()) t.dispose();
        } catch (error) {
          if (!(error instanceof SafetensorsError)) throw error;
          refused++;
          expect(error.file).toBe(file);
        } finally {
          rmSync(file);
        }
      }),
      { numRuns: fuzzRuns(150), seed: FUZZ_SEED },
    );
    expect(refused).toBeGreaterThan(0);
    expect(refused + accepted).toBe(fuzzRuns(150));
  });
});
