/**
 * The check at a forward pass's entry that its token ids are usable: an int64 / int32 tensor of shape
 * [batch, pos] with every id in 0..vocab-1. Float ids would otherwise be truncated silently and an
 * out-of-range id would index past the embedding. Valid ids cost one host read: of the ids themselves when
 * there are at most 256 (a decode step), else of one min and one max reduction; only a refused large
 * tensor is read back in full to find its first offending id.
 */
import { stack, type Tensor, tidy } from "../tensor/index.js";
import { TokenIdError } from "./errors.js";

/** Up to this many ids are checked from one host read instead of a min/max reduction (measured: ~3-5 us vs ~30-50 us). */
const FEW_IDS = 256;

const hostIds = (t: Tensor): number[] => Array.from(t.toArray() as ArrayLike<number | bigint>, Number);

/** Throws TokenIdError unless `ids` is an integer [batch, pos] tensor with ids in [0, vocabSize). */
export function checkTokenIds(ids: Tensor, vocabSize: number): void {
  if (ids.dtype !== "i64" && ids.dtype !== "i32")
    throw new TokenIdError({ message: `token ids must be an int64 or int32 tensor, got ${ids.dtype}` });
  if (ids.ndim !== 2) throw new TokenIdError({ message: `token ids must have shape [batch, pos], got [${ids.shape.join(", ")}]` });
  if (ids.numel === 0) return;
  const outside = (v: number) => v < 0 || v >= vocabSize;
  // A decode step's few ids are read at once (cheaper than two reductions); a prompt batch is reduced first.
  const few = ids.numel <= FEW_IDS ? hostIds(ids) : null;
  if (few ? !few.some(outside) : !tidy(() => hostIds(stack([ids.min(), ids.max()]))).some(outside)) return;
  const flat = few ?? hostIds(ids);
  const index = flat.findIndex((v) => v < 0 || v >= vocabSize);
  const width = ids.size(1);
  const position = [Math.floor(index / width), index % width] as const;
  throw new TokenIdError({
    message: `token id ${flat[index]} at [${position.join(", ")}] is outside the vocabulary 0..${vocabSize - 1}`,
    id: flat[index]!,
    position,
  });
}
