/**
 * Reading steering-vector files: ours (`emlab train`'s safetensors with layer / site / alpha
 * metadata) and the study's released `steering_vector.pt` (a torch.save dict holding the vector, its
 * layer and alpha, read through libtorch's unpickler), checked against a decoder. Training reads them
 * for init_from; analyses and the CLI through src/analysis/files.ts.
 */
import { Data } from "effect";
import { loadSafetensors } from "../io/safetensors.js";
import { disposeTorchValue, loadTorchFile, TorchFileError, type TorchValue } from "../io/torch-file.js";
import type { Decoder } from "../nn/decoder.js";
import { isFloating, keep, Tensor, tidy } from "../tensor/index.js";
import { type SteeringSite, SteeringVector } from "./steering.js";

/**
 * A direction or steering vector that cannot be used: not floating point, non-finite values, zero, no
 * `vector` tensor in the file, or a layer / shape that does not fit the model.
 */
export class DirectionError extends Data.TaggedError("DirectionError")<{ readonly message: string; readonly file: string }> {}

/**
 * Throws DirectionError unless `t` is floating point with only finite values and (when
 * `nonZero`) a non-zero norm: a NaN direction makes every projection NaN and a monitor never alarm.
 */
export function checkDirectionValues(t: Tensor, what: string, file = "", nonZero = true): void {
  if (!isFloating(t.dtype)) throw new DirectionError({ message: `${what} is ${t.dtype}; a direction must be floating point`, file });
  const [finite, norm] = tidy(() => [t.isfinite().all().toNumber(), t.to("f64").norm().toNumber()]);
  if (!finite) throw new DirectionError({ message: `${what} has non-finite values (NaN or infinity)`, file });
  if (nonZero && !(norm > 0)) throw new DirectionError({ message: `${what} is zero; it has no direction`, file });
}

/** Keys accepted in a study `steering_vector.pt` dict, first match wins. */
export const TORCH_VECTOR_KEYS = { vector: ["steering_vector", "vector", "v"], layer: ["layer_idx", "layer"], alpha: ["alpha"] } as const;

export interface SteeringVectorFile {
  vector: Tensor;
  layer: number | null;
  alpha: number | null;
  site: SteeringSite;
}

const scalar = (v: TorchValue | undefined): number | null =>
  typeof v === "number" ? v : v instanceof Tensor && v.numel === 1 ? Number(v.item()) : null;

/**
 * The study's `steering_vector.pt`: a dict with the vector (`steering_vector`, `vector` or `v`, or its
 * only 1-D tensor), `layer_idx` / `layer` and `alpha`. The study adds alpha * v to layer L's down_proj
 * output, so the site is down_proj (the same as the residual stream after the layer).
 */
export function readTorchSteeringVector(file: string): SteeringVectorFile {
  const root = loadTorchFile(file);
  try {
    if (!(root instanceof Map))
      throw new TorchFileError({
        message: `${file}: expected a dict (vector, layer, alpha), found ${Array.isArray(root) ? "a list" : typeof root}`,
        file,
      });
    const pick = (keys: readonly string[]) => keys.map((k) => root.get(k)).find((v) => v !== undefined);
    let vector = pick(TORCH_VECTOR_KEYS.vector);
    if (vector === undefined) {
      const oneD = [...root.values()].filter((v): v is Tensor => v instanceof Tensor && v.ndim === 1);
      if (oneD.length === 1) vector = oneD[0];
    }
    const keys = [...root.keys()].join(", ");
    if (!(vector instanceof Tensor)) {
      throw new TorchFileError({
        message: `${file}: no vector (looked for ${TORCH_VECTOR_KEYS.vector.join(", ")} or a single 1-D tensor; keys: ${keys})`,
        file,
      });
    }
    const v = vector;
    if (v.ndim !== 1 && !(v.ndim === 2 && v.size(0) === 1))
      throw new TorchFileError({ message: `${file}: the vector has shape [${v.shape.join(", ")}], expected [d_model]`, file });
    const layerValue = pick(TORCH_VECTOR_KEYS.layer);
    const alphaValue = pick(TORCH_VECTOR_KEYS.alpha);
    const layer = layerValue === undefined ? null : scalar(layerValue);
    const alpha = alphaValue === undefined ? null : scalar(alphaValue);
    if (layerValue !== undefined && (layer === null || !Number.isInteger(layer)))
      throw new TorchFileError({ message: `${file}: layer must be an integer`, file });
    if (alphaValue !== undefined && (alpha === null || !Number.isFinite(alpha)))
      throw new TorchFileError({ message: `${file}: alpha must be a number`, file });
    return { vector: keep(tidy(() => v.detach().flatten().to("f32"))), layer, alpha, site: "down_proj" };
  } finally {
    disposeTorchValue(root);
  }
}

/** Ours: `vector` tensor with layer / site / alpha metadata (safetensors from `emlab train`). */
export function readSafetensorsSteeringVector(file: string): SteeringVectorFile {
  const { tensors, metadata } = loadSafetensors(file);
  const vector = tensors.get("vector");
  for (const [name, t] of tensors) if (name !== "vector") t.dispose();
  if (!vector) throw new DirectionError({ message: `${file}: no tensor named vector`, file });
  const layer = metadata.layer === undefined ? null : Number(metadata.layer);
  const alpha = metadata.alpha === undefined ? null : Number(metadata.alpha);
  const v = keep(tidy(() => vector.to("f32")));
  if (v !== vector) vector.dispose();
  return { vector: v, layer, alpha, site: (metadata.site as SteeringSite | undefined) ?? "down_proj" };
}

/** Either format, chosen by the file's extension (.pt / .pth: torch.save; otherwise safetensors). */
export function readSteeringVectorFile(file: string): SteeringVectorFile {
  return /\.pth?$/i.test(file) ? readTorchSteeringVector(file) : readSafetensorsSteeringVector(file);
}

/** A steering vector for `decoder` from either format; `overrides` replace the file's layer / alpha. */
export function loadSteeringVector(file: string, decoder: Decoder, overrides: { layer?: number; alpha?: number } = {}): SteeringVector {
  const read = readSteeringVectorFile(file);
  const layer = overrides.layer ?? read.layer;
  const problem =
    layer === null || !Number.isInteger(layer) || layer < 0 || layer >= decoder.numLayers
      ? `${file}: layer ${layer ?? "(none in the file)"} is not a layer of this model (0..${decoder.numLayers - 1}); pass one`
      : read.vector.ndim !== 1 || read.vector.size(0) !== decoder.spec.hiddenSize
        ? `${file}: vector has shape [${read.vector.shape.join(", ")}], the model needs [${decoder.spec.hiddenSize}]`
        : null;
  if (problem !== null) {
    read.vector.dispose();
    throw new DirectionError({ message: problem, file });
  }
  try {
    checkDirectionValues(read.vector, `${file}: vector`, file, false);
  } catch (error) {
    read.vector.dispose();
    throw error;
  }
  const vector = keep(tidy(() => read.vector.to(decoder.device)));
  if (vector !== read.vector) read.vector.dispose();
  return new SteeringVector(layer!, read.site, overrides.alpha ?? read.alpha ?? 1, vector);
}
