/** Language-modelling losses on logits. */
import { cat, crossEntropy, full, type Tensor, tidy } from "../tensor/index.js";

/**
 * Hugging Face's causal-LM loss: logits [batch, pos, vocab] predict labels shifted by one; targets of
 * -100 are ignored; mean over the remaining targets, computed in float32.
 */
export function causalLmLoss(logits: Tensor, labels: Tensor): Tensor {
  return tidy(() => {
    const [batch, pos, vocab] = logits.shape as [number, number, number];
    // As Hugging Face does it: the labels are shifted (the last position gets -100), not the logits, so
    // [batch * pos, vocab] is a view of contiguous logits rather than a copy of [batch, pos - 1, vocab].
    const device = logits.device;
    const shifted = cat([labels.to(device).narrow(1, 1, pos - 1), full([batch, 1], -100, { dtype: labels.dtype, device })], 1);
    return crossEntropy(logits.to("f32").reshape(-1, vocab), shifted.reshape(-1), { ignoreIndex: -100 });
  });
}
