/** Reading the artefacts analyses work on: trained steering vectors and direction files. */
import { loadSafetensors } from "../io/safetensors.js";
import type { Decoder } from "../nn/decoder.js";
import { keep, type Tensor } from "../tensor/index.js";
import { type SteeringSite, SteeringVector } from "../train/steering.js";

/** A steering vector written by `emlab train` (tensor `vector`, metadata layer / site / alpha). */
export function loadSteeringVector(file: string, decoder: Decoder, overrides: { layer?: number; alpha?: number } = {}): SteeringVector {
  const { tensors, metadata } = loadSafetensors(file, { device: decoder.device });
  const vector = tensors.get("vector");
  for (const [name, t] of tensors) if (name !== "vector") t.dispose();
  if (!vector) throw new RangeError(`${file}: no tensor named vector`);
  const layer = overrides.layer ?? Number(metadata.layer);
  if (!Number.isInteger(layer)) throw new RangeError(`${file}: no layer in the metadata; pass one`);
  return new SteeringVector(layer, (metadata.site as SteeringSite | undefined) ?? "down_proj", overrides.alpha ?? Number(metadata.alpha ?? 1), keep(vector.to("f32")));
}

/** A direction file from `emlab direction` (tensor `direction` [layers, d_model]). */
export function loadDirection(file: string, device: Tensor["device"] = "cpu"): Tensor {
  const { tensors } = loadSafetensors(file, { device });
  const direction = tensors.get("direction");
  for (const [name, t] of tensors) if (name !== "direction") t.dispose();
  if (!direction) throw new RangeError(`${file}: no tensor named direction`);
  return keep(direction);
}
