/** Language-modelling losses on logits. */
import { crossEntropy, type Tensor, tidy } from "../tensor/index.js";

/**
 * Hugging Face's causal-LM loss: logits [batch, pos, vocab] predict labels shifted by one; targets of
 * -100 are ignored; mean over the remaining targets, computed in float32.
 */
export function causalLmLoss(logits: Tensor, labels: Tensor): Tensor {
  return tidy(() => {
    const pos = logits.size(1);
    const vocab = logits.size(2);
    const predictions = logits.narrow(1, 0, pos - 1).to("f32").reshape(-1, vocab);
    const targets = labels.narrow(1, 1, pos - 1).reshape(-1).to(logits.device);
    return crossEntropy(predictions, targets, { ignoreIndex: -100 });
  });
}
