/**
 * Locating and reading a checkpoint's weights: `model.safetensors` or the shards listed in
 * `model.safetensors.index.json`; names normalised so multimodal Gemma 3 checkpoints expose their
 * text model under `model.` / `lm_head.` (vision tower and projector are left unused).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readTextFile } from "../io/files.js";
import { readSafetensorsHeader, SafetensorsError, type TensorEntry } from "../io/safetensors.js";
import { ModelWeightsError } from "./errors.js";

export interface WeightSource {
  /** Name as emlab uses it (HF text-model name). */
  name: string;
  /** Name in the file. */
  fileName: string;
  file: string;
  entry: TensorEntry;
}

/** Maps a checkpoint tensor name to the text model's name, or null for tensors of other modalities. */
export function normalizeWeightName(name: string): string | null {
  if (/^(model\.)?(vision_tower|multi_modal_projector)\./.test(name)) return null;
  if (name.startsWith("model.language_model.")) return `model.${name.slice("model.language_model.".length)}`;
  if (name.startsWith("language_model.model.")) return `model.${name.slice("language_model.model.".length)}`;
  if (name.startsWith("language_model.lm_head.")) return `lm_head.${name.slice("language_model.lm_head.".length)}`;
  if (name.startsWith("model.") || name.startsWith("lm_head.")) return name;
  return null;
}

/** Every tensor of the checkpoint in `dir`, by normalised name; others are listed as `unused`. */
export function indexWeights(dir: string): { sources: Map<string, WeightSource>; unused: string[] } {
  const single = join(dir, "model.safetensors");
  const indexFile = join(dir, "model.safetensors.index.json");
  let files: string[];
  if (existsSync(indexFile)) {
    let map: Record<string, string>;
    try {
      const parsed = JSON.parse(readTextFile(indexFile)) as { weight_map?: Record<string, string> };
      if (!parsed.weight_map || typeof parsed.weight_map !== "object") throw new Error("no weight_map object");
      map = parsed.weight_map;
    } catch (error) {
      throw new ModelWeightsError({ message: `${indexFile}: ${(error as Error).message}`, file: indexFile, tensor: "" });
    }
    files = [...new Set(Object.values(map))].map((f) => {
      // Shards are plain file names beside the index: nothing is read from outside the model directory.
      if (typeof f !== "string" || !/^[^/\\\0]+\.safetensors$/.test(f) || f.startsWith(".")) {
        throw new ModelWeightsError({
          message: `${indexFile}: weight_map entry ${JSON.stringify(f)} is not a .safetensors file name in ${dir}`,
          file: indexFile,
          tensor: "",
        });
      }
      return join(dir, f);
    });
  } else if (existsSync(single)) {
    files = [single];
  } else {
    throw new ModelWeightsError({ message: `${dir}: no model.safetensors or model.safetensors.index.json`, file: dir, tensor: "" });
  }
  const sources = new Map<string, WeightSource>();
  const unused: string[] = [];
  for (const file of files) {
    let header;
    try {
      header = readSafetensorsHeader(file);
    } catch (error) {
      if (error instanceof SafetensorsError) throw new ModelWeightsError({ message: error.message, file, tensor: "" });
      throw error;
    }
    for (const [fileName, entry] of header.entries) {
      const name = normalizeWeightName(fileName);
      if (name === null) unused.push(fileName);
      else sources.set(name, { name, fileName, file, entry });
    }
  }
  return { sources, unused };
}
