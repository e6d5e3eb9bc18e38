// Per-layer gradient checkpointing (checkpointedForward, the wrapper the trainer applies): the gradients it produces for LoRA
// parameters (with dropout, so the RNG replay matters), a steering vector, embeddings and layer
// weights equal those of a plain backward exactly, on a Llama-style and a Gemma model in float64;
// logits are equal; misuse is an error; nothing leaks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { causalLmLoss } from "../../src/nn/losses.js";
import { manualSeed, type Tensor, tidy } from "../../src/tensor/index.js";
import { checkpointedForward } from "../../src/train/checkpointed-forward.js";
import { SteeringVector } from "../../src/train/steering.js";
import { useLeakCheck } from "../helpers/leaks.js";

for (const family of ["qwen2", "gemma2"] as const) {
  describe(`gradient checkpointing on ${family}`, () => {
    let model: LoadedModel;
    let expected: Map<string, Tensor>;
    let adapter: LoraAdapter;
    let steering: SteeringVector;
    let params: Tensor[];
    let remove: () => void;
    beforeAll(() => {
      model = loadModel(`test/fixtures/hf/models/${family}`, { dtype: "f64" });
      expected = loadSafetensors(`test/fixtures/hf/models/${family}/expected.safetensors`).tensors;
      adapter = LoraAdapter.create(
        model.spec,
        { r: 2, alpha: 4, dropout: 0.25, targetModules: ["q_proj", "v_proj", "down_proj"] },
        { initB: "random" },
      );
      model.decoder.adapters.attach(adapter);
      model.decoder.adapters.training = true;
      steering = SteeringVector.create(model.decoder, 0, { alpha: 3 });
      remove = steering.attach(model.decoder).remove;
      const embed = model.parameters.get("model.embed_tokens.weight")!.requiresGrad_();
      const q = model.parameters.get("model.layers.1.self_attn.q_proj.weight")!.requiresGrad_();
      params = [...adapter.parameters(), steering.vector, embed, q];
    });
    afterAll(() => {
      remove();
      steering.dispose();
      adapter.dispose();
      model.dispose();
      for (const t of expected.values()) t.dispose();
    });
    useLeakCheck();

    const gradients = (checkpointed: boolean): number[][] => {
      for (const p of params) p.grad = null;
      manualSeed(11);
      const loss = tidy(() => {
        const ids = expected.get("input_ids")!;
        const labels = expected.get("labels")!;
        if (!checkpointed) {
          const l = causalLmLoss(model.decoder.forward(ids).logits!, labels);
          l.backward();
          return l.toNumber();
        }
        const run = checkpointedForward(model.decoder, ids);
        const l = causalLmLoss(run.logits, labels);
        l.backward();
        run.finish();
        return l.toNumber();
      });
      const out = params.map((p) => tidy(() => Array.from(p.grad!.toArray() as Float64Array)));
      for (const p of params) p.grad = null;
      return [[loss], ...out];
    };

    it("gives exactly the gradients (and loss) of a plain backward", () => {
      const plain = gradients(false);
      const checkpointed = gradients(true);
      expect(checkpointed.length).toBe(plain.length);
      expect(checkpointed[0]).toEqual(plain[0]);
      plain.slice(1).forEach((g, i) => {
        expect(
          g.some((v) => v !== 0),
          `parameter ${i} has a gradient`,
        ).toBe(true);
        expect(checkpointed[i + 1]).toEqual(g);
      });
    });

    it("refuses finish() before backward and twice", () =>
      tidy(() => {
        const run = checkpointedForward(model.decoder, expected.get("input_ids")!);
        expect(() => run.finish()).toThrow(/backward/);
        expect(() => run.finish()).toThrow(/already/);
      }));

    it("frees its saved state on dispose()", () =>
      tidy(() => {
        const run = checkpointedForward(model.decoder, expected.get("input_ids")!);
        run.dispose();
        run.dispose();
      }));
  });
}
