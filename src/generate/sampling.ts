/**
 * Choosing the next token from logits [rows, vocab]: greedy (argmax) or sampling with temperature,
 * top-k and top-p (nucleus) filtering as Hugging Face's logits warpers do them.
 */
import { full, type Tensor, tidy, where } from "../tensor/index.js";
import { sampleCategorical } from "./categorical.js";

export interface SamplingOptions {
  /** Argmax instead of sampling. */
  greedy?: boolean;
  /** Divides the logits (default 1). */
  temperature?: number;
  /** Keep the smallest set of tokens whose probability reaches top_p (default 1 = off). */
  topP?: number;
  /** Keep the k most likely tokens (default 0 = off). */
  topK?: number;
}

/** Next token ids [rows] (int64). */
export function chooseNext(logits: Tensor, options: SamplingOptions): Tensor {
  return tidy(() => {
    if (options.greedy) return logits.argmax(-1);
    let scores = logits.to("f32");
    const temperature = options.temperature ?? 1;
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0 when sampling (got ${temperature}); use greedy`);
    // Shifted by the row maximum before dividing (softmax is shift-invariant, so the distribution is the
    // same): a tiny temperature then sends the other entries to -inf instead of overflowing them to +inf,
    // and the limit T -> 0 is the argmax, as it should be.
    // Below f32's smallest denormal the temperature itself rounds to 0 in f32: only the limit is left.
    if (Math.fround(temperature) === 0) return logits.argmax(-1);
    if (temperature !== 1) scores = scores.sub(scores.max(-1, true)).div(temperature);
    const vocab = scores.size(-1);
    const minusInf = full([], -Infinity, { device: scores.device });
    const topK = options.topK ?? 0;
    if (topK > 0 && topK < vocab) {
      const kth = scores.topk(topK, -1).values.narrow(-1, topK - 1, 1);
      scores = where(scores.lt(kth), minusInf, scores);
    }
    const topP = options.topP ?? 1;
    if (topP < 1) {
      // Ascending sort; drop the tokens whose cumulative probability stays within 1 - top_p (keep >= 1).
      const { values: sorted, indices } = scores.sort(-1, false);
      const cumulative = sorted.softmax(-1).cumsum(-1);
      const remove = cumulative.le(1 - topP);
      remove.narrow(-1, vocab - 1, 1).fill_(false);
      const removeOriginal = remove.scatter(-1, indices, remove);
      scores = where(removeOriginal, minusInf, scores);
    }
    return sampleCategorical(scores);
  });
}
