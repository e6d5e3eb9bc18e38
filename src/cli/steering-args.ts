/**
 * `--steering FILE [--scale S] [--layers L]` for generate, eval and chat: a trained steering vector
 * (tensor `vector`, from `emlab train`, or the study's steering_vector.pt; --scale overrides its alpha) or a direction file (tensor
 * `direction`, from `emlab direction`; added as scale * d at --layers' resid_post). Attached as scoped
 * hooks; the returned function removes them and frees the tensors.
 */
import { readSafetensorsHeader } from "../io/safetensors.js";
import { loadDirection, loadSteeringVector } from "../analysis/files.js";
import { steer } from "../analysis/interventions.js";
import type { LoadedModel } from "../models/load.js";
import { parseNumber, UsageError } from "./args.js";

export const steeringOptions = {
  steering: {
    type: "string",
    value: "FILE",
    description: "steer with a trained vector (steering_vector.safetensors) or a direction file (with --scale)",
  },
  scale: {
    type: "string",
    value: "S",
    description: "multiplier: a direction's scale (required for a direction), or a trained vector's alpha",
  },
  layers: {
    type: "string",
    value: "L,L|all",
    description: "layers a direction is added at (resid_post); a trained vector keeps its own layer (default for a direction: all)",
  },
} as const;

/** Attaches what --steering names (nothing without it); returns the detach function. */
export function attachSteering(values: { steering?: string; scale?: string; layers?: string }, model: LoadedModel): () => void {
  if (values.steering === undefined) {
    if (values.scale !== undefined || values.layers !== undefined) throw new UsageError("--scale and --layers need --steering FILE");
    return () => {};
  }
  const file = values.steering;
  const scale = parseNumber("--scale", values.scale);
  // The study's steering_vector.pt (torch.save) is a trained vector too.
  const names = /\.pth?$/i.test(file) ? ["vector"] : [...readSafetensorsHeader(file).entries.keys()];
  if (names.includes("vector")) {
    if (values.layers !== undefined) throw new UsageError(`--layers: ${file} is a trained vector with its own layer`);
    const vector = loadSteeringVector(file, model.decoder, scale === undefined ? {} : { alpha: scale });
    const handle = vector.attach(model.decoder);
    process.stderr.write(`steering: ${file} at layer ${vector.layer} (${vector.site}), alpha ${vector.alpha}\n`);
    return () => {
      handle.remove();
      vector.dispose();
    };
  }
  if (!names.includes("direction")) throw new UsageError(`--steering: ${file} holds neither a "vector" (trained) nor a "direction" tensor`);
  if (scale === undefined) throw new UsageError("--steering with a direction file needs --scale S");
  const all = loadDirection(file, model.decoder.device);
  const numLayers = model.spec.layers.length;
  const layers =
    values.layers === undefined || values.layers === "all"
      ? Array.from({ length: numLayers }, (_, i) => i)
      : values.layers.split(",").map((v) => parseNumber("--layers", v.trim(), { integer: true, min: 0, max: numLayers - 1 })!);
  const handles = steer(model.decoder, all, layers, scale);
  process.stderr.write(`steering: ${file} x ${scale} at layers ${layers.join(",")}\n`);
  return () => {
    for (const h of handles) h.remove();
    all.dispose();
  };
}
