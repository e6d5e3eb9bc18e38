/**
 * Attention masks and positions for (possibly padded) batches: the additive mask combines causality,
 * padding (keys whose attention-mask entry is 0) and sliding windows; positions come from the
 * attention mask (cumulative count of real tokens), so left padding does not shift RoPE.
 */
import { arange, type Device, type DType, full, type Tensor, tidy, where } from "../tensor/index.js";

/** The lowest finite value of a floating dtype (what Hugging Face fills masked scores with). */
export function lowest(dtype: DType): number {
  switch (dtype) {
    case "f16":
      return -65504;
    case "bf16":
      return -3.3895313892515355e38;
    case "f64":
      return -Number.MAX_VALUE;
    default:
      return -3.4028234663852886e38;
  }
}

/**
 * Additive mask [batch, 1, queries, keys]: 0 where query i (at sequence index past + i) may see key j,
 * lowest(dtype) elsewhere. `keyMask` [batch, keys] marks real tokens with 1 (null = all real).
 */
export function additiveMask(
  keyMask: Tensor | null,
  batch: number,
  queries: number,
  keys: number,
  past: number,
  window: number | null,
  dtype: DType,
  device: Device,
): Tensor {
  return tidy(() => {
    const queryIndex = arange(past, past + queries, 1, { device }).unsqueeze(1); // [queries, 1]
    const keyIndex = arange(0, keys, 1, { device }).unsqueeze(0); // [1, keys]
    let allowed = keyIndex.le(queryIndex);
    if (window !== null) allowed = allowed.logicalAnd(queryIndex.sub(keyIndex).lt(window));
    let full4 = allowed.unsqueeze(0).unsqueeze(0); // [1, 1, queries, keys]
    if (keyMask !== null) full4 = full4.logicalAnd(keyMask.to(device).ne(0).unsqueeze(1).unsqueeze(1));
    else full4 = full4.expand(batch, 1, queries, keys);
    return where(full4, full([], 0, { dtype, device }), full([], lowest(dtype), { dtype, device }));
  });
}

/** RoPE positions [batch, count] of the last `count` entries of an attention mask [batch, length]. */
export function positionsFromMask(attentionMask: Tensor, count: number): Tensor {
  return tidy(() => {
    const positions = attentionMask.to("i64").cumsum(1).sub(1).clamp(0);
    const length = attentionMask.size(1);
    return positions.narrow(1, length - count, count);
  });
}
