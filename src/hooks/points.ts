/**
 * The canonical hook points of every decoder, documented once. `l` is the 0-based layer index
 * (`model.layers[l]` in Hugging Face terms). Activations are [batch, pos, d_model] unless noted.
 *
 * | point                  | where                                                                  |
 * |------------------------|------------------------------------------------------------------------|
 * | `embed`                | embedding output (after Gemma's sqrt(d_model) scale) = hidden_states[0] |
 * | `blocks.{l}.resid_pre` | residual stream entering layer l                                       |
 * | `blocks.{l}.attn_out`  | what the attention block adds to the residual (o_proj output; for Gemma after post_attention_layernorm) |
 * | `blocks.{l}.resid_mid` | residual stream after the attention add                                |
 * | `blocks.{l}.down_proj` | raw mlp.down_proj output (the study's steering/LoRA site)              |
 * | `blocks.{l}.mlp_out`   | what the MLP block adds to the residual (= down_proj output, except Gemma: after post_feedforward_layernorm) |
 * | `blocks.{l}.resid_post`| residual stream leaving layer l = HF hidden_states[l + 1] (before the final norm for the last layer) |
 * | `final_norm`           | output of the final norm, input of lm_head                             |
 *
 * Note: for Qwen and Llama, adding v at `down_proj` equals adding v at `mlp_out` and at `resid_post`;
 * for Gemma it does not (the post-feedforward norm sits between them).
 */

export type LayerPoint = "resid_pre" | "attn_out" | "resid_mid" | "down_proj" | "mlp_out" | "resid_post";
export const layerPoints: readonly LayerPoint[] = ["resid_pre", "attn_out", "resid_mid", "down_proj", "mlp_out", "resid_post"];

/** A hook point name: "embed", "final_norm" or `blocks.${layer}.${LayerPoint}`. */
export type HookPoint = "embed" | "final_norm" | `blocks.${number}.${LayerPoint}`;

export function layerPoint(layer: number, point: LayerPoint): HookPoint {
  return `blocks.${layer}.${point}`;
}

/** Validates a point name against a model with `numLayers` layers. */
export function isHookPoint(name: string, numLayers: number): name is HookPoint {
  if (name === "embed" || name === "final_norm") return true;
  const match = /^blocks\.(\d+)\.([a-z_]+)$/.exec(name);
  return match !== null && Number(match[1]) < numLayers && (layerPoints as readonly string[]).includes(match[2]!);
}
