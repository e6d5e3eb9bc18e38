/**
 * Dtypes and devices as the TS API names them, with the codes shared with the addon
 * (order of kDtypes in native/src/convert.cc) and the typed arrays used for host reads.
 */

/** Element types. bf16 and f16 read back as Float32Array. */
export type DType = "f32" | "f16" | "bf16" | "f64" | "i64" | "i32" | "u8" | "bool" | "i8" | "i16";
/** "cpu", or a CUDA device as "cuda" / "cuda:N". */
export type Device = "cpu" | "cuda" | `cuda:${number}`;

const codes: readonly DType[] = ["f32", "f16", "bf16", "f64", "i64", "i32", "u8", "bool", "i8", "i16"];
const byName = new Map<string, number>(codes.map((name, code) => [name, code]));

export function dtypeCode(dtype: DType): number {
  const code = byName.get(dtype);
  if (code === undefined) throw new TypeError(`unknown dtype ${JSON.stringify(dtype)}; expected one of ${codes.join(", ")}`);
  return code;
}

export function dtypeFromCode(code: number): DType {
  const dtype = codes[code];
  if (dtype === undefined) throw new TypeError(`unknown dtype code ${code}`);
  return dtype;
}

export const allDTypes: readonly DType[] = codes;

export function isFloating(dtype: DType): boolean {
  return dtype === "f32" || dtype === "f16" || dtype === "bf16" || dtype === "f64";
}

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  switch (dtype) {
    case "f64":
    case "i64":
      return 8;
    case "f32":
    case "i32":
      return 4;
    case "f16":
    case "bf16":
    case "i16":
      return 2;
    default:
      return 1;
  }
}

/** The typed array a tensor of `dtype` reads back into. */
export type HostArray<D extends DType = DType> = D extends "f32" | "f16" | "bf16"
  ? Float32Array
  : D extends "f64"
    ? Float64Array
    : D extends "i64"
      ? BigInt64Array
      : D extends "i32"
        ? Int32Array
        : D extends "i16"
          ? Int16Array
          : D extends "i8"
            ? Int8Array
            : Uint8Array;

export function hostArray(dtype: DType, buffer: ArrayBuffer): HostArray {
  switch (dtype) {
    case "f32":
    case "f16":
    case "bf16":
      return new Float32Array(buffer);
    case "f64":
      return new Float64Array(buffer);
    case "i64":
      return new BigInt64Array(buffer);
    case "i32":
      return new Int32Array(buffer);
    case "i16":
      return new Int16Array(buffer);
    case "i8":
      return new Int8Array(buffer);
    default:
      return new Uint8Array(buffer);
  }
}

/** The dtype a typed array holds natively (used when creating tensors from typed arrays). */
export function dtypeOfArray(array: ArrayBufferView): DType {
  if (array instanceof Float32Array) return "f32";
  if (array instanceof Float64Array) return "f64";
  if (array instanceof BigInt64Array) return "i64";
  if (array instanceof Int32Array) return "i32";
  if (array instanceof Int16Array) return "i16";
  if (array instanceof Int8Array) return "i8";
  if (array instanceof Uint8Array) return "u8";
  throw new TypeError(`unsupported typed array ${array.constructor.name}`);
}

export function normalizeDevice(device: Device | string): Device {
  if (device === "cpu") return "cpu";
  if (device === "cuda") return "cuda:0";
  if (/^cuda:\d+$/.test(device)) return device as Device;
  throw new TypeError(`unknown device ${JSON.stringify(device)}; expected "cpu", "cuda" or "cuda:N"`);
}
