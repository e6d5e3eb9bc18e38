/**
 * An activation-cache analysis: cache every layer's attention pattern and residual stream in one pass,
 * find the head that attends most to the previous token, attribute a logit difference to each layer's
 * residual stream (gradient x activation, on the frozen model), and check one layer by activation
 * patching. Usage: npx tsx examples/extend/activation-cache.ts MODEL_DIR
 */
import { type HookPoint, loadModel, patchActivations, runWithCache, type Tensor, tidy } from "../../src/index.js";

export function analyse(modelDir: string, clean: number[], corrupted: number[], answer: number, distractor: number) {
  const model = loadModel(modelDir);
  const layers = model.spec.layers.length;
  const last = clean.length - 1;
  const logitDiff = (logits: Tensor) =>
    logits.select(0, 0).select(0, last).select(0, answer).sub(logits.select(0, 0).select(0, last).select(0, distractor));
  const patterns = Array.from({ length: layers }, (_, l) => `blocks.${l}.attn.pattern` as HookPoint);
  const residuals = Array.from({ length: layers }, (_, l) => `blocks.${l}.resid_post` as HookPoint);
  const cache = runWithCache(model.decoder, clean, { points: [...patterns, ...residuals], backward: ({ logits }) => logitDiff(logits) });
  try {
    // Previous-token score of each head: mean attention from position i to i - 1.
    let best = { layer: -1, head: -1, score: -1 };
    for (let l = 0; l < layers; l++) {
      const scores = tidy(() => {
        const p = cache.get(patterns[l]!).select(0, 0); // [heads, pos, keys]
        const sub = Array.from({ length: last }, (_, i) =>
          p
            .select(1, i + 1)
            .select(1, i)
            .unsqueeze(1),
        ); // [heads, 1] each
        return Array.from(
          sub
            .reduce((a, b) => a.add(b))
            .div(last)
            .squeeze(1)
            .toArray() as Float32Array,
        );
      });
      scores.forEach((score, head) => {
        if (score > best.score) best = { layer: l, head, score };
      });
    }
    // Gradient x activation per layer: a first-order estimate of each layer's share of the logit difference.
    const attribution = residuals.map((point) => tidy(() => cache.grad(point).mul(cache.get(point)).sum().toNumber()));
    const patched = patchActivations(model.decoder, clean, corrupted, {
      points: [residuals[0]!],
      metric: (logits) => logitDiff(logits).toNumber(),
    });
    return {
      metric: cache.metric!,
      previousTokenHead: best,
      attribution,
      patching: { clean: patched.clean, corrupted: patched.corrupted, patchedLayer0: patched.patched },
    };
  } finally {
    cache.dispose();
    model.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const modelDir = process.argv[2];
  if (!modelDir) {
    console.error("usage: npx tsx examples/extend/activation-cache.ts MODEL_DIR");
    process.exit(2);
  }
  console.log(JSON.stringify(analyse(modelDir, [5, 17, 99, 250, 4, 8], [5, 17, 99, 251, 4, 9], 12, 13), null, 2));
}
