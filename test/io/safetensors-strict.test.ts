// Covers the strict reading rules of src/io/safetensors.ts and src/io/files.ts added for issue 13 item 11: the
// reference format's rules (no repeated keys, no gap between tensors, no trailing bytes, strict UTF-8, a header that
// starts with '{'), dtype names that are Object.prototype keys, and special files (a FIFO is refused at once, not
// waited on). Each file is built byte by byte here, independently of the writer.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { findDuplicateJsonKey } from "../../src/io/files.js";
import { loadSafetensors, readSafetensorsHeader, SafetensorsError } from "../../src/io/safetensors.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

let dir = "";
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-safetensors-strict-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 8-byte LE length, header bytes, data. */
function rawFile(header: string | Buffer, data: Buffer): string {
  const json = typeof header === "string" ? Buffer.from(header, "utf8") : header;
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  const file = join(dir, `f-${counter++}.safetensors`);
  writeFileSync(file, Buffer.concat([length, json, data]));
  return file;
}

function rejection(file: string): SafetensorsError {
  try {
    readSafetensorsHeader(file);
  } catch (error) {
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).file).toBe(file);
    return error as SafetensorsError;
  }
  throw new Error(`${file} was accepted`);
}

const f32 = (begin: number, end: number, n = (end - begin) / 4): string =>
  `{"dtype":"F32","shape":[${n}],"data_offsets":[${begin},${end}]}`;

describe("the reference format's strict rules", () => {
  test("a valid two-tensor file (the control) is accepted and reads back", () => {
    const data = Buffer.alloc(16);
    data.writeFloatLE(1.5, 0);
    data.writeFloatLE(-2, 12);
    const file = rawFile(`{"a":${f32(0, 8)},"b":${f32(8, 16)}}`, data);
    const { tensors } = loadSafetensors(file);
    expect(Array.from(tensors.get("a")!.toArray() as Float32Array)).toEqual([1.5, 0]);
    expect(Array.from(tensors.get("b")!.toArray() as Float32Array)).toEqual([0, -2]);
    for (const t of tensors.values()) t.dispose();
  });

  test("a repeated tensor name is refused (JSON.parse would keep the last silently)", () => {
    const file = rawFile(`{"a":${f32(0, 8)},"a":${f32(8, 16)}}`, Buffer.alloc(16));
    expect(rejection(file).message).toMatch(/repeats the key "a"/);
  });

  test("a repeated __metadata__ key is refused", () => {
    const file = rawFile(`{"__metadata__":{"k":"1","k":"2"},"a":${f32(0, 8)}}`, Buffer.alloc(8));
    expect(rejection(file).message).toMatch(/repeats the key "__metadata__.k"/);
  });

  test("a gap between two tensors is refused", () => {
    const file = rawFile(`{"a":${f32(0, 8)},"b":${f32(12, 20)}}`, Buffer.alloc(20));
    expect(rejection(file).message).toMatch(/gap after byte 8/);
  });

  test("trailing bytes after the last tensor are refused", () => {
    const file = rawFile(`{"a":${f32(0, 8)}}`, Buffer.alloc(12));
    expect(rejection(file).message).toMatch(/4 trailing byte/);
  });

  test("a header with invalid UTF-8 is refused (not decoded with replacement characters)", () => {
    const header = Buffer.concat([Buffer.from(`{"a`), Buffer.from([0xff, 0xfe]), Buffer.from(`":${f32(0, 8)}}`)]);
    const file = rawFile(header, Buffer.alloc(8));
    expect(rejection(file).message).toMatch(/not valid UTF-8/);
  });

  test("a header that does not start with '{' is refused (leading whitespace included)", () => {
    expect(rejection(rawFile(` {"a":${f32(0, 8)}}`, Buffer.alloc(8))).message).toMatch(/start with/);
  });

  test("trailing space padding of the header (as writers pad to 8 bytes) is accepted", () => {
    readSafetensorsHeader(rawFile(`{"a":${f32(0, 8)}}   `, Buffer.alloc(8)));
  });

  test("dtype names that are Object.prototype keys are unknown dtypes, not a lookup hit", () => {
    for (const dtype of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const file = rawFile(`{"a":{"dtype":"${dtype}","shape":[2],"data_offsets":[0,8]}}`, Buffer.alloc(8));
      expect(rejection(file).message).toContain(`unsupported dtype ${dtype}`);
    }
  });

  test("tensor and metadata names that are Object.prototype keys are ordinary names", () => {
    const file = rawFile(
      `{"__metadata__":{"__proto__":"x","constructor":"y"},"constructor":${f32(0, 8)},"__proto__":${f32(8, 16)}}`,
      Buffer.alloc(16),
    );
    const header = readSafetensorsHeader(file);
    expect([...header.entries.keys()].sort()).toEqual(["__proto__", "constructor"]);
    expect(Object.getPrototypeOf(header.metadata)).toBe(Object.prototype);
    expect(Object.hasOwn(header.metadata, "__proto__")).toBe(true);
    expect(header.metadata.constructor).toBe("y");
  });
});

describe("special files", () => {
  test("a FIFO given as a safetensors file is refused at once, not waited on", () => {
    const fifo = join(dir, `fifo-${counter++}.safetensors`);
    execFileSync("mkfifo", [fifo]);
    const started = Date.now();
    expect(rejection(fifo).message).toMatch(/not a regular file/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test("a directory is refused", () => {
    expect(rejection(dir).message).toMatch(/not a regular file|EISDIR/);
  });
});

describe("findDuplicateJsonKey", () => {
  test("finds repeats at any depth, ignores keys inside strings and arrays of objects with equal keys", () => {
    expect(findDuplicateJsonKey('{"a":1,"b":{"c":1,"c":2}}')).toBe("b.c");
    expect(findDuplicateJsonKey('{"a":"{\\"a\\":1,\\"a\\":2}","b":[{"x":1},{"x":2}]}')).toBeNull();
    expect(findDuplicateJsonKey('{"a\\u0062":1,"ab":2}')).toBe("ab");
  });
});
