/**
 * The canonical hook points of every decoder, documented once. `l` is the 0-based layer index
 * (`model.layers[l]` in Hugging Face terms). Activations are [batch, pos, d_model] unless noted;
 * `heads` = num_attention_heads, `kv_heads` = num_key_value_heads, `d_ff` = intermediate_size, `keys` =
 * cached + new positions.
 *
 * | point                    | where                                                                  |
 * |--------------------------|------------------------------------------------------------------------|
 * | `embed`                  | embedding output (after Gemma's sqrt(d_model) scale) = hidden_states[0] |
 * | `blocks.{l}.resid_pre`   | residual stream entering layer l                                       |
 * | `blocks.{l}.attn.q`      | queries [batch, heads, pos, d_head], after q-norm (Qwen3, Gemma 3) and RoPE |
 * | `blocks.{l}.attn.k`      | keys of the new positions [batch, kv_heads, pos, d_head], after k-norm and RoPE |
 * | `blocks.{l}.attn.v`      | values of the new positions [batch, kv_heads, pos, d_head]             |
 * | `blocks.{l}.attn.scores` | attention logits [batch, heads, pos, keys]: scaled (soft-capped for Gemma 2) q.k plus the additive mask (-inf / min where masked) |
 * | `blocks.{l}.attn.pattern`| attention weights softmax(scores) [batch, heads, pos, keys]           |
 * | `blocks.{l}.attn.z`      | per-head attention output [batch, pos, heads, d_head], the input of o_proj |
 * | `blocks.{l}.attn_out`    | what the attention block adds to the residual (o_proj output; for Gemma after post_attention_layernorm) |
 * | `blocks.{l}.resid_mid`   | residual stream after the attention add                                |
 * | `blocks.{l}.mlp.gate`    | gate_proj output before the activation [batch, pos, d_ff]              |
 * | `blocks.{l}.mlp.up`      | up_proj output [batch, pos, d_ff]                                      |
 * | `blocks.{l}.mlp.hidden`  | act(gate) * up [batch, pos, d_ff], the input of down_proj              |
 * | `blocks.{l}.down_proj`   | raw mlp.down_proj output (the study's steering/LoRA site)              |
 * | `blocks.{l}.mlp_out`     | what the MLP block adds to the residual (= down_proj output, except Gemma: after post_feedforward_layernorm) |
 * | `blocks.{l}.resid_post`  | residual stream leaving layer l = HF hidden_states[l + 1] (before the final norm for the last layer) |
 * | `final_norm`             | output of the final norm, input of lm_head                             |
 *
 * Costs: a layer with no hook at any `attn.*` or `mlp.*` point runs exactly as before (fused attention
 * kernel, no extra tensors). A hook at `attn.scores` or `attn.pattern` switches that layer to the
 * explicit softmax(q k^T * scale + mask) v path for the forward passes it is registered for (same
 * result within float rounding); the other layers keep the fused kernel. Replacing `attn.q`/`k`/`v`
 * changes what is cached during generation.
 *
 * Note: for Qwen and Llama, adding v at `down_proj` equals adding v at `mlp_out` and at `resid_post`;
 * for Gemma it does not (the post-feedforward norm sits between them).
 */

export type AttentionPoint = "attn.q" | "attn.k" | "attn.v" | "attn.scores" | "attn.pattern" | "attn.z";
export type MlpPoint = "mlp.gate" | "mlp.up" | "mlp.hidden";
export type LayerPoint = "resid_pre" | "attn_out" | "resid_mid" | "down_proj" | "mlp_out" | "resid_post" | AttentionPoint | MlpPoint;
/** The points of one layer in the order a forward pass reaches them. */
export const layerPoints: readonly LayerPoint[] = [
  "resid_pre",
  "attn.q",
  "attn.k",
  "attn.v",
  "attn.scores",
  "attn.pattern",
  "attn.z",
  "attn_out",
  "resid_mid",
  "mlp.gate",
  "mlp.up",
  "mlp.hidden",
  "down_proj",
  "mlp_out",
  "resid_post",
];
/** Points that need the explicit attention path (the fused kernel never forms the pattern). */
export const patternPoints: readonly LayerPoint[] = ["attn.scores", "attn.pattern"];

/** A hook point name: "embed", "final_norm" or `blocks.${layer}.${LayerPoint}`. */
export type HookPoint = "embed" | "final_norm" | `blocks.${number}.${LayerPoint}`;

export function layerPoint(layer: number, point: LayerPoint): HookPoint {
  return `blocks.${layer}.${point}`;
}

/** The layer and in-layer point of a name, or null for embed / final_norm / unknown names. */
export function parseLayerPoint(name: string): { layer: number; point: LayerPoint } | null {
  const match = /^blocks\.(\d+)\.([a-z_.]+)$/.exec(name);
  if (match === null || !(layerPoints as readonly string[]).includes(match[2]!)) return null;
  return { layer: Number(match[1]), point: match[2] as LayerPoint };
}

/** Validates a point name against a model with `numLayers` layers. */
export function isHookPoint(name: string, numLayers: number): name is HookPoint {
  if (name === "embed" || name === "final_norm") return true;
  const parsed = parseLayerPoint(name);
  return parsed !== null && parsed.layer < numLayers;
}
