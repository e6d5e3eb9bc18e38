// Numerical parity with Hugging Face transformers on the tiny models of every supported family
// (test/fixtures/hf): logits and every hidden state (<= 1e-4 max abs, float32), causal-LM loss
// (<= 1e-5), selected parameter gradients (<= 1e-5 relative to their max), padded-batch logits.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { causalLmLoss } from "../../src/nn/losses.js";
import { liveTensorCount, type Tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const families = ["qwen2", "qwen3", "llama", "gemma2", "gemma3"] as const;

const maxAbs = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().toNumber());

for (const family of families) {
  describe(`${family} matches Hugging Face`, () => {
    const dir = `test/fixtures/hf/models/${family}`;
    let model: LoadedModel;
    let expected: Map<string, Tensor>;
    let baseline = 0;
    beforeAll(() => {
      baseline = liveTensorCount();
      model = loadModel(dir);
      expected = loadSafetensors(`${dir}/expected.safetensors`).tensors;
    });
    afterAll(() => {
      model.dispose();
      for (const t of expected.values()) t.dispose();
      expect(liveTensorCount()).toBe(baseline);
    });
    useLeakCheck();

    it("logits and every hidden state within 1e-4", () =>
      tidy(() => {
        const out = model.decoder.forward(expected.get("input_ids")!, { hiddenStates: true });
        expect(out.logits!.shape).toEqual(expected.get("logits")!.shape);
        expect(maxAbs(out.logits!, expected.get("logits")!)).toBeLessThanOrEqual(1e-4);
        const count = [...expected.keys()].filter((k) => k.startsWith("hidden_states.")).length;
        expect(out.hiddenStates.length).toBe(count);
        out.hiddenStates.forEach((h, i) => {
          expect(maxAbs(h, expected.get(`hidden_states.${i}`)!), `hidden_states.${i}`).toBeLessThanOrEqual(1e-4);
        });
      }));

    it("causal-LM loss within 1e-5 and gradients within 1e-5 of their max", () => {
      const names = [...expected.keys()].filter((k) => k.startsWith("grad.")).map((k) => k.slice(5));
      expect(names.length).toBeGreaterThan(0);
      const params = [...model.parameters.values()];
      for (const p of params) p.requiresGrad_();
      try {
        tidy(() => {
          const logits = model.decoder.forward(expected.get("input_ids")!).logits!;
          const loss = causalLmLoss(logits, expected.get("labels")!);
          expect(Math.abs(loss.toNumber() - expected.get("loss")!.toNumber())).toBeLessThanOrEqual(1e-5);
          loss.backward();
          for (const name of names) {
            const param = model.parameters.get(name);
            expect(param, `parameter ${name}`).toBeDefined();
            const want = expected.get(`grad.${name}`)!;
            const scale = want.abs().max().toNumber();
            expect(maxAbs(param!.grad!, want) / scale, `grad.${name}`).toBeLessThanOrEqual(1e-5);
          }
        });
      } finally {
        for (const p of params) {
          p.grad = null;
          p.requiresGrad_(false);
        }
      }
    });

    it("padded-batch logits equal at non-pad positions", () =>
      tidy(() => {
        const mask = expected.get("padded.attention_mask")!;
        const logits = model.decoder.forward(expected.get("padded.input_ids")!, { attentionMask: mask }).logits!;
        const keep = mask.unsqueeze(-1).to("f32");
        expect(tidy(() => logits.sub(expected.get("padded.logits")!).mul(keep).abs().max().toNumber())).toBeLessThanOrEqual(1e-4);
        // Row 1 really is padded, and its real tokens give the same logits as the unpadded row alone.
        expect(mask.sum(1).toList()).not.toEqual([12n, 12n]);
      }));

    it("computes only the last position's logits when asked", () =>
      tidy(() => {
        const ids = expected.get("input_ids")!;
        const last = model.decoder.forward(ids, { logits: "last" }).logits!;
        expect(last.shape).toEqual([2, 1, model.spec.vocabSize]);
        expect(maxAbs(last.select(1, 0), expected.get("logits")!.select(1, ids.size(1) - 1))).toBeLessThanOrEqual(1e-4);
      }));
  });
}
