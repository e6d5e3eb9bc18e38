// causalLmLoss against a float64 computation written here: logits at position t predict the label at
// t + 1, labels of -100 are ignored, mean over the rest (as Hugging Face's causal-LM loss).
import { expect, it } from "vitest";
import { causalLmLoss } from "../../src/nn/losses.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { seededValues } from "../helpers/numeric.js";

useLeakCheck();

it("causalLmLoss is the mean cross-entropy of next-token predictions, skipping -100 labels", () => {
  const [batch, pos, vocab] = [2, 5, 7];
  const logits = seededValues(batch * pos * vocab, 11, -3, 3);
  const labels = [
    [4, 1, -100, 6, 0],
    [-100, 2, 3, -100, 5],
  ];
  let sum = 0;
  let count = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < pos - 1; t++) {
      const target = labels[b]![t + 1]!;
      if (target === -100) continue;
      const row = logits.slice((b * pos + t) * vocab, (b * pos + t + 1) * vocab);
      const max = Math.max(...row);
      const logSumExp = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      sum += logSumExp - row[target]!;
      count++;
    }
  }
  const loss = tidy(() =>
    causalLmLoss(
      tensor(logits, { shape: [batch, pos, vocab] }),
      tensor(BigInt64Array.from(labels.flat(), BigInt), { shape: [batch, pos] }),
    ).toNumber(),
  );
  expect(count).toBe(6);
  expect(Math.abs(loss - sum / count)).toBeLessThan(1e-5);
});
