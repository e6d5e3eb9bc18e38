/** Reading the artefacts analyses work on: trained steering vectors and direction files. */
import { Data } from "effect";
import { loadSafetensors } from "../io/safetensors.js";
import type { Decoder } from "../nn/decoder.js";
import { isFloating, keep, type Tensor, tidy } from "../tensor/index.js";
import { type SteeringSite, SteeringVector } from "../train/steering.js";

/** A direction or steering vector that cannot be used: not floating point, non-finite values, or zero. */
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

/** A steering vector written by `emlab train` (tensor `vector`, metadata layer / site / alpha). */
export function loadSteeringVector(file: string, decoder: Decoder, overrides: { layer?: number; alpha?: number } = {}): SteeringVector {
  const { tensors, metadata } = loadSafetensors(file, { device: decoder.device });
  const vector = tensors.get("vector");
  for (const [name, t] of tensors) if (name !== "vector") t.dispose();
  // Every exit below frees the loaded tensor: the vector keeps only its float32 copy.
  try {
    if (!vector) throw new RangeError(`${file}: no tensor named vector`);
    checkDirectionValues(vector, `${file}: vector`, file, false);
    const layer = overrides.layer ?? Number(metadata.layer);
    if (!Number.isInteger(layer) || layer < 0 || layer >= decoder.numLayers) throw new RangeError(`${file}: layer ${metadata.layer ?? "(none in the metadata)"} is not a layer of this model (0..${decoder.numLayers - 1}); pass one`);
    if (vector.ndim !== 1 || vector.size(0) !== decoder.spec.hiddenSize) throw new RangeError(`${file}: vector has shape [${vector.shape.join(", ")}], the model needs [${decoder.spec.hiddenSize}]`);
    return new SteeringVector(layer, (metadata.site as SteeringSite | undefined) ?? "down_proj", overrides.alpha ?? Number(metadata.alpha ?? 1), keep(vector.to("f32")));
  } finally {
    vector?.dispose();
  }
}

/** A direction file from `emlab direction` (tensor `direction` [layers, d_model]). */
export function loadDirection(file: string, device: Tensor["device"] = "cpu"): Tensor {
  const { tensors } = loadSafetensors(file, { device });
  const direction = tensors.get("direction");
  for (const [name, t] of tensors) if (name !== "direction") t.dispose();
  if (!direction) throw new RangeError(`${file}: no tensor named direction`);
  try {
    checkDirectionValues(direction, `${file}: direction`, file, false);
  } catch (error) {
    direction.dispose();
    throw error;
  }
  return keep(direction);
}
