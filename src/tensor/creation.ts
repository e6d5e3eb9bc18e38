/**
 * Creating tensors: from typed arrays, nested arrays and scalars, and the factory functions
 * (zeros, ones, full, arange, linspace, randn, rand, randint, empty, eye). Default dtype is f32
 * for floats and i64 for integer data (like torch); default device is cpu.
 */
import { native } from "../native/addon.js";
import { type Device, type DType, dtypeCode, dtypeOfArray, isFloating, normalizeDevice } from "./dtype.js";
import { Tensor, type NestedList } from "./tensor.js";
import { handleOf } from "./internal.js";

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}

const dev = (options: CreateOptions): string => normalizeDevice(options.device ?? "cpu");

/** Infers the shape of a rectangular nested array; throws on ragged input. */
function shapeOf(data: NestedList): number[] {
  const shape: number[] = [];
  let level: NestedList = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0] as NestedList;
  }
  return shape;
}

function flatten(data: NestedList, shape: readonly number[], depth: number, out: (number | bigint | boolean)[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError("tensor(): ragged nested array (too deep at some position)");
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new TypeError(`tensor(): ragged nested array (dim ${depth} should have length ${shape[depth]})`);
  }
  for (const item of data) flatten(item, shape, depth + 1, out);
}

/** Packs JS values into the host bytes of `dtype`. */
function pack(values: readonly (number | bigint | boolean)[], dtype: DType): ArrayBufferView {
  const num = (v: number | bigint | boolean): number => (typeof v === "number" ? v : Number(v));
  switch (dtype) {
    case "f64":
      return Float64Array.from(values, num);
    case "i64":
      return BigInt64Array.from(values, (v) => (typeof v === "bigint" ? v : BigInt(Math.trunc(num(v)))));
    case "i32":
      return Int32Array.from(values, num);
    case "i16":
      return Int16Array.from(values, num);
    case "i8":
      return Int8Array.from(values, num);
    case "u8":
      return Uint8Array.from(values, num);
    case "bool":
      return Uint8Array.from(values, (v) => (num(v) !== 0 ? 1 : 0));
    default:
      return Float32Array.from(values, num);
  }
}

/**
 * A tensor from a typed array (dtype from the array unless given: a typed array is converted
 * after upload), a nested JS array, or a scalar (0-dim).
 */
export function tensor(data: NestedList | ArrayBufferView, options: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  const device = dev(options);
  if (ArrayBuffer.isView(data)) {
    const source = dtypeOfArray(data);
    const length = data.byteLength / (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const shape = options.shape ?? [length];
    const raw = new Tensor(native.fromBytes(data, dtypeCode(source), shape, device));
    if (options.dtype === undefined || options.dtype === source) return raw;
    const converted = raw.to(options.dtype);
    raw.dispose();
    return converted;
  }
  if (!Array.isArray(data)) {
    const dtype = options.dtype ?? (typeof data === "boolean" ? "bool" : typeof data === "bigint" ? "i64" : "f32");
    return new Tensor(native.scalarTensor(data, dtypeCode(dtype), device));
  }
  const shape = shapeOf(data);
  const values: (number | bigint | boolean)[] = [];
  flatten(data, shape, 0, values);
  const dtype = options.dtype ?? inferDtype(values);
  if (options.shape && options.shape.reduce((a, b) => a * b, 1) !== values.length) {
    throw new TypeError(`tensor(): shape [${options.shape.join(", ")}] does not hold ${values.length} values`);
  }
  const shapeOut = options.shape ?? shape;
  if (dtype === "f16" || dtype === "bf16") {
    // JS has no half-precision arrays: upload as f32 and let libtorch round.
    const wide = new Tensor(native.fromBytes(pack(values, "f32"), dtypeCode("f32"), shapeOut, device));
    const narrow = wide.to(dtype);
    wide.dispose();
    return narrow;
  }
  return new Tensor(native.fromBytes(pack(values, dtype), dtypeCode(dtype), shapeOut, device));
}

function inferDtype(values: readonly (number | bigint | boolean)[]): DType {
  if (values.length === 0) return "f32";
  if (values.every((v) => typeof v === "boolean")) return "bool";
  if (values.every((v) => typeof v === "bigint")) return "i64";
  return "f32";
}

export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return new Tensor(native.zeros(shape, dtypeCode(options.dtype ?? "f32"), dev(options)));
}
export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return new Tensor(native.ones(shape, dtypeCode(options.dtype ?? "f32"), dev(options)));
}
/** Uninitialised memory. */
export function empty(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return new Tensor(native.empty(shape, dtypeCode(options.dtype ?? "f32"), dev(options)));
}
export function full(shape: readonly number[], value: number | bigint | boolean, options: CreateOptions = {}): Tensor {
  return new Tensor(native.full(shape, value, dtypeCode(options.dtype ?? "f32"), dev(options)));
}
/** [start, end) with `step`; integer arguments give i64 like torch unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  const integral = Number.isInteger(from) && Number.isInteger(to) && Number.isInteger(step);
  const dtype = options.dtype ?? (integral ? "i64" : "f32");
  return new Tensor(native.arange(from, to, step, dtypeCode(dtype), dev(options)));
}
export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  return new Tensor(native.linspace(start, end, steps, dtypeCode(options.dtype ?? "f32"), dev(options)));
}
/** Standard normal samples (seeded by `manualSeed`). */
export function randn(shape: readonly number[], options: CreateOptions = {}): Tensor {
  const dtype = options.dtype ?? "f32";
  if (!isFloating(dtype)) throw new TypeError(`randn(): dtype must be floating, got ${dtype}`);
  return new Tensor(native.randn(shape, dtypeCode(dtype), dev(options)));
}
/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], options: CreateOptions = {}): Tensor {
  const dtype = options.dtype ?? "f32";
  if (!isFloating(dtype)) throw new TypeError(`rand(): dtype must be floating, got ${dtype}`);
  return new Tensor(native.rand(shape, dtypeCode(dtype), dev(options)));
}
/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: readonly number[], options: CreateOptions = {}): Tensor {
  return new Tensor(native.randint(low, high, shape, dtypeCode(options.dtype ?? "i64"), dev(options)));
}
export function eye(n: number, m = n, options: CreateOptions = {}): Tensor {
  return new Tensor(native.eye(n, m, dtypeCode(options.dtype ?? "f32"), dev(options)));
}
export function zerosLike(x: Tensor): Tensor {
  return new Tensor(native.zerosLike(handleOf(x)));
}
export function onesLike(x: Tensor): Tensor {
  return new Tensor(native.onesLike(handleOf(x)));
}
export function randnLike(x: Tensor): Tensor {
  return new Tensor(native.randnLike(handleOf(x)));
}
/** The CPU generator's state (a u8 tensor): save it to resume random streams exactly. */
export function getRngState(): Tensor {
  return new Tensor(native.getRngState());
}
/** Restores a state from getRngState. */
export function setRngState(state: Tensor): void {
  native.setRngState(handleOf(state));
}
/** Seeds libtorch's default generators (CPU and CUDA). */
export function manualSeed(seed: number | bigint): void {
  native.manualSeed(seed);
}
