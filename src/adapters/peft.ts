/**
 * PEFT's on-disk LoRA format: `adapter_config.json` (peft_type LORA, r, lora_alpha, use_rslora,
 * lora_dropout, target_modules, layers_to_transform, bias "none") and `adapter_model.safetensors` with
 * keys `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r]. Adapters made
 * by Python PEFT load here and ours load there. Unsupported options are errors, not silently ignored.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Data } from "effect";
import { makeOutputDir, writeOutputFile } from "../io/output.js";
import { readTextFile } from "../io/files.js";
import { loadSafetensors, saveSafetensors } from "../io/safetensors.js";
import type { LoadedModel } from "../models/load.js";
import { keep, type Tensor } from "../tensor/index.js";
import { isTarget, LoraAdapter, type LoraConfig, type LoraModule, linearModules } from "./lora.js";

/** A PEFT adapter directory that cannot be used, naming the file and the problem. */
export class AdapterError extends Data.TaggedError("AdapterError")<{ readonly message: string; readonly file: string }> {}

const fail = (file: string, problem: string): never => {
  throw new AdapterError({ message: `${file}: ${problem}`, file });
};

function readConfig(dir: string): LoraConfig {
  const file = join(dir, "adapter_config.json");
  let parsed: unknown;
  try {
    parsed = JSON.parse(readTextFile(file));
  } catch (error) {
    return fail(file, `cannot read (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return fail(file, "is not a JSON object");
  const raw = parsed as Record<string, unknown>;
  if (raw.peft_type !== undefined && raw.peft_type !== "LORA")
    fail(file, `peft_type ${JSON.stringify(raw.peft_type)} is not supported (LORA only)`);
  const r = raw.r;
  const alpha = raw.lora_alpha;
  if (typeof r !== "number" || !Number.isSafeInteger(r) || r < 1) fail(file, `r must be a positive integer, got ${JSON.stringify(r)}`);
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) fail(file, `lora_alpha must be a finite number, got ${JSON.stringify(alpha)}`);
  const dropout = raw.lora_dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1))
    fail(file, `lora_dropout must be a number in [0, 1), got ${JSON.stringify(dropout)}`);
  if ((raw.bias ?? "none") !== "none") fail(file, `bias ${JSON.stringify(raw.bias)} is not supported (none only)`);
  for (const flag of ["use_dora", "fan_in_fan_out", "lora_bias"]) if (raw[flag] === true) fail(file, `${flag} is not supported`);
  for (const pattern of ["rank_pattern", "alpha_pattern"]) {
    const value = raw[pattern];
    if (value && typeof value === "object" && Object.keys(value).length > 0) fail(file, `${pattern} is not supported`);
  }
  const targets = raw.target_modules;
  if (!(typeof targets === "string" || (Array.isArray(targets) && targets.every((t) => typeof t === "string")))) {
    fail(file, "target_modules must be a list of names or a regex string");
  }
  const layers = raw.layers_to_transform;
  const layersToTransform =
    layers === undefined || layers === null
      ? null
      : typeof layers === "number"
        ? [layers]
        : Array.isArray(layers)
          ? (layers as unknown[])
          : undefined;
  if (
    layersToTransform === undefined ||
    (layersToTransform ?? []).some((l) => typeof l !== "number" || !Number.isSafeInteger(l) || l < 0)
  ) {
    fail(file, `layers_to_transform must be a layer index or a list of them, got ${JSON.stringify(layers)}`);
  }
  return {
    r: r as number,
    alpha: alpha as number,
    useRslora: raw.use_rslora === true,
    dropout: dropout as number,
    targetModules: targets as string[] | string,
    layersToTransform: layersToTransform as number[] | null,
  };
}

/** Loads a PEFT LoRA adapter for `model` (not attached: call model.decoder.adapters.attach). */
export function loadPeftAdapter(dir: string, model: LoadedModel, options: { name?: string; trainable?: boolean } = {}): LoraAdapter {
  const config = readConfig(dir);
  const file = join(dir, "adapter_model.safetensors");
  const shapes = linearModules(model.spec);
  let tensors: Map<string, Tensor>;
  try {
    tensors = loadSafetensors(file, { device: model.decoder.device }).tensors;
  } catch (error) {
    return fail(file, (error as Error).message);
  }
  const modules = new Map<string, LoraModule>();
  const kept: Tensor[] = [];
  try {
    for (const [key, t] of tensors) {
      const match = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(key);
      if (!match) fail(file, `unexpected tensor ${key}`);
      const [, module, which] = match as unknown as [string, string, "A" | "B"];
      const shape = shapes.get(module);
      if (!shape) fail(file, `${key}: the model has no linear module ${module}`);
      const [out, inp] = shape!;
      const want = which === "A" ? [config.r, inp] : [out, config.r];
      if (t.shape.join(",") !== want.join(",")) fail(file, `${key} has shape [${t.shape.join(", ")}], expected [${want.join(", ")}]`);
      if (!["f32", "f64", "f16", "bf16"].includes(t.dtype))
        fail(file, `${key} is stored as ${t.dtype}; LoRA tensors must be floating point`);
      const entry = modules.get(module) ?? ({} as Partial<LoraModule>);
      const value = t.dtype === "f32" || t.dtype === "f64" ? t : t.to("f32");
      if (value !== t) t.dispose();
      entry[which] = keep(options.trainable ? value.requiresGrad_() : value);
      kept.push(entry[which]!);
      modules.set(module, entry as LoraModule);
    }
    for (const [module, m] of modules) {
      if (!m.A || !m.B) fail(file, `module ${module} lacks lora_${m.A ? "B" : "A"}`);
      if (!isTarget(module, config)) fail(file, `module ${module} is not among target_modules / layers_to_transform`);
    }
    if (modules.size === 0) fail(file, "no LoRA tensors");
  } catch (error) {
    for (const t of tensors.values()) t.dispose();
    for (const t of kept) t.dispose();
    throw error;
  }
  return new LoraAdapter(options.name ?? "default", config, modules);
}

/** Writes `adapter` in PEFT's format (atomically per file). */
export function savePeftAdapter(dir: string, adapter: LoraAdapter, options: { baseModel?: string | null } = {}): void {
  makeOutputDir(dir);
  const c = adapter.config;
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: options.baseModel ?? null,
    r: c.r,
    lora_alpha: c.alpha,
    use_rslora: c.useRslora ?? false,
    lora_dropout: c.dropout ?? 0,
    target_modules: typeof c.targetModules === "string" ? c.targetModules : [...c.targetModules],
    layers_to_transform: c.layersToTransform ? [...c.layersToTransform] : null,
    bias: "none",
    fan_in_fan_out: false,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
    rank_pattern: {},
    alpha_pattern: {},
    modules_to_save: null,
  };
  const tensors: Record<string, Tensor> = {};
  for (const [module, m] of adapter.modules) {
    tensors[`base_model.model.${module}.lora_A.weight`] = m.A;
    tensors[`base_model.model.${module}.lora_B.weight`] = m.B;
  }
  saveSafetensors(join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
  writeOutputFile(join(dir, "adapter_config.json"), `${JSON.stringify(config, null, 2)}\n`);
}
