/**
 * The one table of a decoder layer's linear modules: Hugging Face / PEFT name, the group it sits in
 * (self_attn or mlp), its [out, in] shape and which spec flag gives it a bias. Weight loading, LoRA
 * and the decoder's projection routing all read it; nothing else spells these shapes out.
 */
import type { DecoderSpec } from "./spec.js";

/** The kind of a linear projection inside one decoder layer. */
export type LinearKind = "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj";

interface LinearModuleRow {
  kind: LinearKind;
  group: "self_attn" | "mlp";
  /** [out, in] from the spec. */
  shape(spec: DecoderSpec): [number, number];
  /** Whether the module has a bias for this spec. */
  hasBias(spec: DecoderSpec): boolean;
}

const d = (s: DecoderSpec) => s.hiddenSize;
const q = (s: DecoderSpec) => s.numHeads * s.headDim;
const kv = (s: DecoderSpec) => s.numKvHeads * s.headDim;
const f = (s: DecoderSpec) => s.intermediateSize;

/** In the order checkpoints list them. */
export const LINEAR_MODULES: readonly LinearModuleRow[] = [
  { kind: "q_proj", group: "self_attn", shape: (s) => [q(s), d(s)], hasBias: (s) => s.qkvBias },
  { kind: "k_proj", group: "self_attn", shape: (s) => [kv(s), d(s)], hasBias: (s) => s.qkvBias },
  { kind: "v_proj", group: "self_attn", shape: (s) => [kv(s), d(s)], hasBias: (s) => s.qkvBias },
  { kind: "o_proj", group: "self_attn", shape: (s) => [d(s), q(s)], hasBias: (s) => s.oBias },
  { kind: "gate_proj", group: "mlp", shape: (s) => [f(s), d(s)], hasBias: (s) => s.mlpBias },
  { kind: "up_proj", group: "mlp", shape: (s) => [f(s), d(s)], hasBias: (s) => s.mlpBias },
  { kind: "down_proj", group: "mlp", shape: (s) => [d(s), f(s)], hasBias: (s) => s.mlpBias },
];

const groupOf = new Map(LINEAR_MODULES.map((row) => [row.kind, row.group]));

/** The full module name of `kind` in layer `layer` (model.layers.{l}.self_attn.q_proj ...). */
export function linearModuleName(layer: number, kind: LinearKind): string {
  return `model.layers.${layer}.${groupOf.get(kind)!}.${kind}`;
}

/** [out, in] of every linear module of the decoder, by full name, layer by layer in table order. */
export function linearModules(spec: DecoderSpec): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  spec.layers.forEach((_, l) => {
    for (const row of LINEAR_MODULES) out.set(linearModuleName(l, row.kind), row.shape(spec));
  });
  return out;
}
