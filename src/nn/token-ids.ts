/**
 * The check at a forward pass's entry that its token ids are usable: an int64 / int32 tensor of shape
 * [batch, pos] with every id in 0..vocab-1. Float ids would otherwise be truncated silently and an
 * out-of-range id would index past the embedding. Valid ids cost one min and one max reduction and a
 * single two-value host read; only a refused tensor is read back to find its first offending id.
 */
import { stack, type Tensor, tidy } from "../tensor/index.js";
import { TokenIdError } from "./errors.js";

/** Throws TokenIdError unless `ids` is an integer [batch, pos] tensor with ids in [0, vocabSize). */
export function checkTokenIds(ids: Tensor, vocabSize: number): void {
  if (ids.dtype !== "i64" && ids.dtype !== "i32")
    throw new TokenIdError({ message: `token ids must be an int64 or int32 tensor, got ${ids.dtype}` });
  if (ids.ndim !== 2) throw new TokenIdError({ message: `token ids must have shape [batch, pos], got [${ids.shape.join(", ")}]` });
  if (ids.numel === 0) return;
  const [low, high] = tidy(() => Array.from(stack([ids.min(), ids.max()]).toArray() as ArrayLike<number | bigint>, Number));
  if (low! >= 0 && high! < vocabSize) return;
  const flat = Array.from(ids.toArray() as ArrayLike<number | bigint>, Number);
  const index = flat.findIndex((v) => v < 0 || v >= vocabSize);
  const width = ids.size(1);
  const position = [Math.floor(index / width), index % width] as const;
  throw new TokenIdError({
    message: `token id ${flat[index]} at [${position.join(", ")}] is outside the vocabulary 0..${vocabSize - 1}`,
    id: flat[index]!,
    position,
  });
}
