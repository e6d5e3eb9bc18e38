/**
 * `emlab ablate`: generate with the direction projected out of chosen layers (run in intervention.ts),
 * or with --lora-b-out remove it from LoRA B (src/analysis/interventions.ts ablateLoraB) and write PEFT.
 */
import { join } from "node:path";
import { ablateLoraB } from "../analysis/interventions.js";
import { savePeftAdapter } from "../adapters/peft.js";
import type { LoadedModel } from "../models/load.js";
import type { Tensor } from "../tensor/index.js";
import { UsageError } from "./args.js";
import { choice, directionRows, layersFrom } from "./analysis-options.js";
import { interventionOptions, runIntervention } from "./intervention.js";
import { defineCommand } from "./options.js";

export const ablateCommand = defineCommand({
  name: "ablate",
  summary: "Generate with the direction projected out of the chosen layers' output, or (--adapter, --lora-b-out) remove it from LoRA B.",
  notes: [
    "Activation ablation, two forms (docs/study.md): shared (the study's, the default): the --direction-layer row projected out at that layer (or at --layers); per-layer (ours): each layer's own row.",
    "LoRA-B ablation (--lora-b-out), the study's load_lora_with_vec_ablated by default: down_proj B of --layers only, one row (--direction-layer), B renormalised to its original Frobenius norm; ours via --lora-b-rows per-layer, --lora-b-modules down_proj,o_proj, --no-renormalise.",
  ],
  options: {
    ...interventionOptions,
    "lora-b-out": {
      type: "string",
      value: "DIR",
      description: "weight-space ablation: write the --adapter(s) with the direction removed from B here, as PEFT (several: DIR/<name>/)",
    },
    "lora-b-rows": {
      type: "string",
      value: "shared|per-layer",
      description: "LoRA-B: one row, --direction-layer (the study's, the default) or each layer's own (ours)",
    },
    "lora-b-modules": {
      type: "string",
      value: "down_proj[,o_proj]",
      default: "down_proj",
      description: "LoRA-B: module kinds changed (the study: down_proj; ours: also o_proj)",
    },
    "no-renormalise": { type: "boolean", description: "LoRA-B: keep B's reduced norm (ours; the study renormalises)" },
  },
});

export function runAblate(argv: readonly string[]): Promise<number> | number {
  return runIntervention("ablate", ablateCommand, argv, ablateAdapters);
}

/** `ablate --lora-b-out DIR`: the study's LoRA-B ablation by default, our variants by flags; written as PEFT. */
export function ablateAdapters(values: Record<string, string | boolean | undefined>, model: LoadedModel, direction: Tensor): number {
  const adapters = model.decoder.adapters.list;
  if (adapters.length === 0) throw new UsageError("--lora-b-out needs --adapter");
  const out = values["lora-b-out"] as string;
  const rows = directionRows(
    { form: values["lora-b-rows"] as string | undefined, "direction-layer": values["direction-layer"] as string | undefined },
    direction,
    "shared",
    "--lora-b-rows",
  );
  const modules = ((values["lora-b-modules"] as string | undefined) ?? "down_proj")
    .split(",")
    .map((m) => choice("--lora-b-modules", m.trim(), ["down_proj", "o_proj"] as const, "down_proj"));
  const changed = ablateLoraB(adapters, direction, {
    layers: values.layers === undefined ? undefined : layersFrom("--layers", values.layers as string, model),
    rows,
    modules,
    renormalise: values["no-renormalise"] !== true,
  });
  if (changed === 0) throw new UsageError(`no ${modules.join("/")} module of the adapter(s) is in the chosen layers: nothing to ablate`);
  const written = adapters.map((a) => {
    const dir = adapters.length === 1 ? out : join(out, a.name);
    savePeftAdapter(dir, a, { baseModel: model.dir });
    return dir;
  });
  process.stdout.write(`${JSON.stringify({ out: written, modules: changed, rows, renormalised: values["no-renormalise"] !== true })}\n`);
  return 0;
}
