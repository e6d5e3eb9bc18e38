/**
 * Writing a randomly initialised model directory (config.json + model.safetensors) for a given
 * Hugging Face config: for benchmarks at real model shapes and for tests that need a model whose
 * vocabulary matches a real tokenizer. Weights ~ N(0, 0.02^2), norms 1 (0 for Gemma's (1+w) norms).
 */
import { mkdirSync } from "node:fs";
import { writeOutputFile } from "../io/output.js";
import { join } from "node:path";
import { saveSafetensors } from "../io/safetensors.js";
import { type DType, manualSeed, ones, randn, type Tensor, tidy, zeros } from "../tensor/index.js";
import { familyFor } from "./families.js";
import type { HfConfig } from "./hf-config.js";
import { expectedWeights } from "./load.js";

/** Writes `config` and random weights to `dir`; returns the number of parameters. */
export function writeRandomModel(
  dir: string,
  config: HfConfig & Record<string, unknown>,
  options: { seed?: number; dtype?: DType } = {},
): number {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "config.json");
  writeOutputFile(file, `${JSON.stringify(config, null, 2)}\n`);
  const spec = familyFor(config, file).toSpec(config, file);
  const dtype = options.dtype ?? "f32";
  manualSeed(options.seed ?? 0);
  let count = 0;
  tidy(() => {
    const tensors: Record<string, Tensor> = {};
    for (const [name, shape] of expectedWeights(spec)) {
      count += shape.reduce((a, b) => a * b, 1);
      const isNorm = name.endsWith("norm.weight");
      tensors[name] = (
        isNorm
          ? spec.normStyle === "oneplus"
            ? zeros(shape)
            : ones(shape)
          : name.endsWith(".bias")
            ? zeros(shape)
            : randn(shape).mul(0.02)
      ).to(dtype);
    }
    saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  });
  return count;
}
