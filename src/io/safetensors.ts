/**
 * safetensors files: header parsing with the reference format's strict rules (8-byte length inside
 * the file, a strict-UTF-8 JSON object starting with `{`, no repeated keys, known dtypes,
 * shape x itemsize = byte length, tensors tiling the data section exactly: no overlap, no gap, no
 * trailing bytes), opened without blocking (a FIFO is refused, not waited on),
 * loading tensors of every supported dtype straight from the file into libtorch (no copy through
 * JS), and atomic writing with string metadata. Every error names the file and the problem.
 */
import { closeSync, readSync } from "node:fs";
import { Data } from "effect";
import { native } from "../native/addon.js";
import { writeOutput } from "./output.js";
import { type Device, type DType, dtypeCode, itemSize, normalizeDevice, Tensor } from "../tensor/index.js";
import { decodeUtf8Strict, findDuplicateJsonKey, openRegularFile } from "./files.js";
import { handleOf } from "../tensor/internal.js";

/** A malformed or unreadable safetensors file. */
export class SafetensorsError extends Data.TaggedError("SafetensorsError")<{
  readonly message: string;
  readonly file: string;
  readonly problem: string;
}> {}

const fail = (file: string, problem: string): never => {
  throw new SafetensorsError({ message: `${file}: ${problem}`, file, problem });
};

const fileDtypes: Readonly<Record<string, DType>> = {
  F64: "f64",
  F32: "f32",
  F16: "f16",
  BF16: "bf16",
  I64: "i64",
  I32: "i32",
  I16: "i16",
  I8: "i8",
  U8: "u8",
  BOOL: "bool",
};
/** The emlab dtype of a header dtype string; own keys only (a dtype named "constructor" is unknown). */
const dtypeOfFile = (name: string): DType | undefined => (Object.hasOwn(fileDtypes, name) ? fileDtypes[name] : undefined);
const fileDtypeOf: Record<DType, string> = Object.fromEntries(Object.entries(fileDtypes).map(([k, v]) => [v, k])) as Record<DType, string>;

/** Largest header we accept (the format's own limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte range relative to the start of the data section. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute file offset of the data section (8 + header length). */
  readonly dataStart: number;
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Reads and validates the header of `file`. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  let size: number;
  try {
    ({ fd, size } = openRegularFile(file));
  } catch (error) {
    return fail(file, `cannot open (${(error as Error).message})`);
  }
  try {
    if (size < 8) fail(file, `file is ${size} bytes, shorter than the 8-byte header length`);
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const headerLength = lengthBytes.readBigUInt64LE(0);
    if (headerLength > BigInt(size - 8)) fail(file, `header length ${headerLength} runs past the end of the file (${size} bytes)`);
    if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`);
    const n = Number(headerLength);
    const headerBytes = Buffer.alloc(n);
    if (readSync(fd, headerBytes, 0, n, 8) !== n) fail(file, "short read of the header");
    const dataStart = 8 + n;
    let text: string;
    try {
      text = decodeUtf8Strict(headerBytes);
    } catch {
      return fail(file, "header is not valid UTF-8");
    }
    return parseHeader(file, text, dataStart, size - dataStart);
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    return fail(file, `cannot read (${(error as Error).message})`);
  } finally {
    closeSync(fd);
  }
}

function parseHeader(file: string, text: string, dataStart: number, dataLength: number): SafetensorsHeader {
  if (!text.startsWith("{")) fail(file, "header does not start with '{'");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return fail(file, `header is not valid JSON (${(error as Error).message})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) return fail(file, "header is not a JSON object");
  const duplicate = findDuplicateJsonKey(text);
  if (duplicate !== null) fail(file, `header repeats the key ${JSON.stringify(duplicate)}`);
  const metadataEntries: [string, string][] = [];
  const entries = new Map<string, TensorEntry>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) fail(file, "__metadata__ is not an object");
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail(file, `__metadata__.${k} is not a string`);
        metadataEntries.push([k, v as string]);
      }
      continue;
    }
    entries.set(name, parseEntry(file, name, value, dataLength));
  }
  // The tensors must tile the data section: in offset order each starts where the previous ended
  // (empty tensors included), and the last one ends at the end of the file.
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: TensorEntry | undefined;
  for (const entry of sorted) {
    if (entry.begin < cursor) {
      fail(file, `tensor ${entry.name} [${entry.begin}, ${entry.end}) overlaps ${previous!.name} [${previous!.begin}, ${previous!.end})`);
    }
    if (entry.begin > cursor)
      fail(file, `tensor ${entry.name} starts at byte ${entry.begin} of the data section, leaving a gap after byte ${cursor}`);
    cursor = entry.end;
    previous = entry;
  }
  if (cursor !== dataLength)
    fail(file, `the data section has ${dataLength - cursor} trailing byte(s) after the last tensor (ends at ${cursor} of ${dataLength})`);
  return { file, entries, metadata: Object.fromEntries(metadataEntries), dataStart };
}

function parseEntry(file: string, name: string, value: unknown, dataLength: number): TensorEntry {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return fail(file, `tensor ${name}: entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string") return fail(file, `tensor ${name}: dtype is missing`);
  const mapped = dtypeOfFile(dtype);
  if (!mapped) return fail(file, `tensor ${name}: unsupported dtype ${dtype}`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger))
    return fail(file, `tensor ${name}: shape must be an array of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    return fail(file, `tensor ${name}: data_offsets must be [begin, end] non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(file, `tensor ${name}: data_offsets [${begin}, ${end}] are reversed`);
  if (end > dataLength) fail(file, `tensor ${name}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes)`);
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * itemSize(mapped);
  if (!Number.isSafeInteger(expected)) fail(file, `tensor ${name}: shape [${shape.join(", ")}] is too large`);
  if (end - begin !== expected) {
    fail(file, `tensor ${name}: shape [${shape.join(", ")}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`);
  }
  return { name, dtype: mapped, shape: shape as number[], begin, end };
}

export interface LoadOptions {
  /** Only these tensors (all by default); a missing name is an error. */
  names?: readonly string[];
  device?: Device;
}

/** Loads tensors from `file` (validated first). The caller owns the returned tensors. */
export function loadSafetensors(
  file: string,
  options: LoadOptions = {},
): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const header = readSafetensorsHeader(file);
  const names = options.names ?? [...header.entries.keys()];
  const entries = names.map((name) => header.entries.get(name) ?? fail(file, `no tensor named ${JSON.stringify(name)}`));
  let handles;
  try {
    handles = native.readTensors(
      file,
      entries.map((e) => [header.dataStart + e.begin, dtypeCode(e.dtype), e.shape] as [number, number, readonly number[]]),
      normalizeDevice(options.device ?? "cpu"),
    );
  } catch (error) {
    return fail(file, (error as Error).message);
  }
  const tensors = new Map<string, Tensor>();
  entries.forEach((e, i) => tensors.set(e.name, new Tensor(handles[i]!)));
  return { tensors, metadata: { ...header.metadata } };
}

/**
 * Writes tensors (any device, any supported dtype) with optional string metadata, through
 * writeOutput (io/output.ts): a private temporary beside the destination renamed into place, so
 * readers never see a partial file; destinations that are not regular files are refused.
 */
export function saveSafetensors(
  file: string,
  tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): void {
  const list: [string, Tensor][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, Tensor>);
  // No prototype: a tensor named "__proto__" must become a key, not replace the prototype.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const [name, t] of list) {
    if (name === "__metadata__") throw new TypeError("saveSafetensors: __metadata__ is not a valid tensor name");
    const bytes = t.numel * itemSize(t.dtype);
    header[name] = { dtype: fileDtypeOf[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jsonBytes = Buffer.from(json, "utf8");
  const prefix = new Uint8Array(8 + jsonBytes.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  prefix.set(jsonBytes, 8);
  writeOutput(file, (temporary) =>
    native.writeTensors(
      temporary,
      prefix,
      list.map(([, t]) => handleOf(t)),
    ),
  );
}
