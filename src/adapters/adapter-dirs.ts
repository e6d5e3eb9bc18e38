/**
 * Where `--adapter` points: one PEFT directory (adapter_config.json inside), a comma list of them, or a
 * run directory holding several (`emlab train` writes RUN/adapter/ for one adapter and
 * RUN/adapter/<name>/ for several). Every adapter found is loaded and attached: a multi-adapter
 * solution (e.g. nine rank-1 adapters trained as nine) acts as one.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { LoadedModel } from "../models/load.js";
import type { LoraAdapter } from "./lora.js";
import { AdapterError, loadPeftAdapter } from "./peft.js";

const isAdapterDir = (dir: string) => existsSync(join(dir, "adapter_config.json"));

/** The PEFT directories a spec names, in order (sub-directories sorted by name). */
export function resolveAdapterDirs(spec: string): string[] {
  const parts = spec
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (parts.length === 0) throw new AdapterError({ message: `--adapter: no directory in ${JSON.stringify(spec)}`, file: spec });
  const out: string[] = [];
  for (const part of parts) {
    if (!existsSync(part) || !statSync(part).isDirectory())
      throw new AdapterError({ message: `${part}: no such adapter directory`, file: part });
    if (isAdapterDir(part)) {
      out.push(part);
      continue;
    }
    const root = existsSync(join(part, "adapter")) ? join(part, "adapter") : part;
    if (isAdapterDir(root)) {
      out.push(root);
      continue;
    }
    const children = existsSync(root)
      ? readdirSync(root)
          .sort()
          .map((d) => join(root, d))
          .filter((d) => statSync(d).isDirectory() && isAdapterDir(d))
      : [];
    if (children.length === 0)
      throw new AdapterError({ message: `${part}: no adapter_config.json here, in adapter/ or in their sub-directories`, file: part });
    out.push(...children);
  }
  return out;
}

/** Loads every adapter of `spec` (not attached); names are unique (the directory name, numbered on clashes). */
export function loadPeftAdapters(spec: string, model: LoadedModel): LoraAdapter[] {
  const dirs = resolveAdapterDirs(spec);
  const adapters: LoraAdapter[] = [];
  const used = new Set<string>();
  try {
    for (const dir of dirs) {
      let name = dirs.length === 1 ? "default" : basename(dir);
      for (let i = 1; used.has(name); i++) name = `${basename(dir)}_${i}`;
      used.add(name);
      adapters.push(loadPeftAdapter(dir, model, { name }));
    }
  } catch (error) {
    for (const a of adapters) a.dispose();
    throw error;
  }
  return adapters;
}

/** Loads and attaches every adapter of `spec`; returns them (the caller disposes them after the model). */
export function attachPeftAdapters(spec: string, model: LoadedModel): LoraAdapter[] {
  const adapters = loadPeftAdapters(spec, model);
  for (const a of adapters) model.decoder.adapters.attach(a);
  return adapters;
}
