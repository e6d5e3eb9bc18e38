/**
 * Files written by Python's `torch.save` (the zip format of torch >= 1.6 and the legacy format), read by
 * libtorch's own unpickler in the addon: a tree of tensors, numbers, booleans, strings, null, lists and dicts.
 * Storages saved from a GPU load on the CPU; `device` moves the tensors. The caller owns the tensors
 * (disposeTorchValue frees a whole tree). nn.Parameters load as their tensors. Files that are not
 * torch.save output, or hold Python objects, are a TorchFileError naming the file.
 */
import { Data } from "effect";
import { type Handle, native } from "../native/addon.js";
import { type Device, normalizeDevice, Tensor } from "../tensor/index.js";

export class TorchFileError extends Data.TaggedError("TorchFileError")<{ readonly message: string; readonly file: string }> {}

export type TorchValue = Tensor | number | boolean | string | null | TorchValue[] | TorchDict;
/** A pickled dict: keys are strings or integers, in the file's order. */
export type TorchDict = Map<string | number, TorchValue>;

type RawValue = { tensor: Handle } | { dict: [RawValue, RawValue][] } | RawValue[] | number | boolean | string | null;

function convert(raw: RawValue, device: Device): TorchValue {
  if (raw === null || typeof raw !== "object") return raw;
  if (Array.isArray(raw)) return raw.map((r) => convert(r, device));
  if ("tensor" in raw) {
    const t = new Tensor(raw.tensor);
    if (device === "cpu") return t;
    const moved = t.to(device);
    t.dispose();
    return moved;
  }
  return new Map(raw.dict.map(([k, v]) => [k as string | number, convert(v, device)]));
}

/** Loads a torch.save file. */
export function loadTorchFile(file: string, options: { device?: Device } = {}): TorchValue {
  let raw: RawValue;
  try {
    raw = native.loadTorchFile(file) as RawValue;
  } catch (error) {
    const message = (error as Error).message;
    throw new TorchFileError({ message: message.includes(file) ? message : `${file}: ${message}`, file });
  }
  return convert(raw, normalizeDevice(options.device ?? "cpu"));
}

/** Disposes every tensor in a loaded tree. */
export function disposeTorchValue(value: TorchValue): void {
  if (value instanceof Tensor) value.dispose();
  else if (Array.isArray(value)) value.forEach(disposeTorchValue);
  else if (value instanceof Map) value.forEach(disposeTorchValue);
}
