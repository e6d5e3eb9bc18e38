/**
 * The options every model command shares: --model, --adapter (a PEFT LoRA directory, a comma list of
 * them, or a run directory holding several: all are applied), --dtype, --device, --allow-unused-weights
 * (load a checkpoint holding tensors its config does not use).
 */
import { attachPeftAdapters } from "../adapters/adapter-dirs.js";
import { loadModel, type LoadedModel, type ModelLoadOptions } from "../models/load.js";
import { allDTypes, type Device, type DType, normalizeDevice } from "../tensor/index.js";
import { required, UsageError } from "./args.js";

export const modelOptions = {
  model: {
    type: "string",
    value: "DIR",
    required: true,
    description: "local Hugging Face model directory (config.json, safetensors weights, tokenizer)",
  },
  adapter: {
    type: "string",
    value: "DIR",
    description:
      "PEFT LoRA adapter(s) applied on top of the model: a directory, a comma list, or a run directory holding several (RUN/adapter/<name>/); all act as one solution",
  },
  dtype: { type: "string", value: "f32|bf16|f16|f64", default: "f32", description: "compute dtype of the weights" },
  device: { type: "string", value: "cpu|cuda[:N]", default: "cpu", description: "device to run on" },
  "allow-unused-weights": {
    type: "boolean",
    description: "load even when the checkpoint holds tensors the config does not use (listed as unused)",
  },
} as const;

/** The directory and load options of --model, --dtype, --device, --allow-unused-weights (a bad value is a usage error). */
export function modelLoadOptions(values: { model?: string; dtype?: string; device?: string; "allow-unused-weights"?: boolean }): {
  dir: string;
  options: ModelLoadOptions;
} {
  const dir = required("--model", values.model);
  const dtype = (values.dtype ?? modelOptions.dtype.default) as DType;
  if (!allDTypes.includes(dtype) || !["f32", "f16", "bf16", "f64"].includes(dtype)) {
    throw new UsageError(`--dtype: expected f32, bf16, f16 or f64, got ${JSON.stringify(values.dtype)}`);
  }
  let device: Device;
  try {
    device = normalizeDevice(values.device ?? modelOptions.device.default);
  } catch (error) {
    throw new UsageError(`--device: ${(error as Error).message}`);
  }
  return { dir, options: { dtype, device, allowUnusedWeights: values["allow-unused-weights"] === true } };
}

export function openModel(values: {
  model?: string;
  adapter?: string;
  dtype?: string;
  device?: string;
  "allow-unused-weights"?: boolean;
}): LoadedModel {
  const { dir, options } = modelLoadOptions(values);
  const model = loadModel(dir, options);
  if (values.adapter === undefined) return model;
  try {
    const adapters = attachPeftAdapters(values.adapter, model);
    return {
      ...model,
      dispose() {
        for (const adapter of adapters) adapter.dispose();
        model.dispose();
      },
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}
