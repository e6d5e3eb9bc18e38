/**
 * The LoRA workload of the peer benchmark, shared by bench/peer.ts and bench/sft-split.ts so both time
 * the same thing (its transformers twin is lora_workload in bench/peer_hf.py): a rank-32 adapter
 * (alpha 64) on all seven projections of every layer, attached in training mode, and AdamW (lr 1e-4)
 * over its parameters. The caller owns both and detaches/disposes them.
 */
import { LoraAdapter } from "../src/adapters/lora.js";
import type { LoadedModel } from "../src/models/load.js";
import { LINEAR_MODULES } from "../src/nn/linear-modules.js";
import { AdamW } from "../src/optim/adamw.js";

export function attachLoraWorkload(model: LoadedModel): { adapter: LoraAdapter; optimizer: AdamW } {
  const adapter = LoraAdapter.create(model.spec, { r: 32, alpha: 64, targetModules: LINEAR_MODULES.map((row) => row.kind) });
  model.decoder.adapters.attach(adapter);
  model.decoder.adapters.training = true;
  return { adapter, optimizer: new AdamW(adapter.parameters(), { lr: 1e-4 }) };
}
