// Training gradients on the qwen2 fixture loaded in float64: the KL penalty (value, masking, direction,
// normalisation) and its gradients w.r.t. LoRA parameters and a steering vector, the causal-LM loss's
// steering gradient, steering sites, and AdamW on LoRA parameters, checked against central differences.
//
// Precision: even a float64 model is not float64 end to end here (RMSNorm, RoPE tables and both losses
// work in float32, as Hugging Face does), and the loss values come back as float32 (ulp ~5e-7 at a loss
// of 6). Differences of those values cannot resolve a gradient to ~1e-6, so the central differences are
// taken of an independent float64 evaluation of the same KL / cross-entropy on the model's logits, with
// steps of 2^-8; they agree with backward to <= ~2e-4 of the largest gradient entry. Tolerance: 2e-3 of it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { causalLmLoss } from "../../src/nn/losses.js";
import { AdamW } from "../../src/optim/index.js";
import { klPenalty } from "../../src/train/losses.js";
import { checkpointedForward } from "../../src/train/checkpointed-forward.js";
import { SteeringVector } from "../../src/train/steering.js";
import { getRngState, keep, manualSeed, noGrad, rand, randn, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const QWEN2 = "test/fixtures/hf/models/qwen2";
const VOCAB = 512;
const STEP = 2 ** -8;
const TOLERANCE = 2e-3;

const host = (t: Tensor): number[] => tidy(() => Array.from(t.toArray() as ArrayLike<number | bigint>, Number));
const maxAbs = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().toNumber());

/** Sets element `i` (flat) of a leaf in place, without recording it; returns the value actually stored. */
function setElement(t: Tensor, i: number, value: number): number {
  noGrad(() =>
    tidy(() => {
      const data = t.dtype === "f64" ? Float64Array.from(host(t)) : Float32Array.from(host(t));
      data[i] = value;
      t.copy_(tensor(data, { shape: t.shape }));
    }),
  );
  return host(t)[i]!;
}

/** Row-wise log-softmax of a flat [rows, vocab] array, in float64. */
function logSoftmaxRows(x: readonly number[], rows: number): number[] {
  const out = new Array<number>(x.length);
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < VOCAB; v++) max = Math.max(max, x[r * VOCAB + v]!);
    let sum = 0;
    for (let v = 0; v < VOCAB; v++) sum += Math.exp(x[r * VOCAB + v]! - max);
    const lse = max + Math.log(sum);
    for (let v = 0; v < VOCAB; v++) out[r * VOCAB + v] = x[r * VOCAB + v]! - lse;
  }
  return out;
}

/** KL(p || q) per position from logits, averaged over positions with mask 1 (float64, on the host). */
function klHost(pLogits: readonly number[], qLogits: readonly number[], mask: readonly number[]): number {
  const lp = logSoftmaxRows(pLogits, mask.length);
  const lq = logSoftmaxRows(qLogits, mask.length);
  let total = 0;
  let count = 0;
  mask.forEach((m, r) => {
    if (m === 0) return;
    count++;
    for (let v = 0; v < VOCAB; v++) total += Math.exp(lp[r * VOCAB + v]!) * (lp[r * VOCAB + v]! - lq[r * VOCAB + v]!);
  });
  return total / count;
}

/** Hugging Face's causal-LM loss (shifted, -100 ignored, mean) in float64 on the host. */
function ceHost(logits: readonly number[], labels: readonly number[], batch: number, pos: number): number {
  const lp = logSoftmaxRows(logits, batch * pos);
  let total = 0;
  let count = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < pos - 1; t++) {
      const y = labels[b * pos + t + 1]!;
      if (y === -100) continue;
      total -= lp[(b * pos + t) * VOCAB + y]!;
      count++;
    }
  }
  return total / count;
}

/**
 * Compares backward's gradient `analytic` of `param` with central differences of `loss` at the three
 * largest entries and two fixed ones; differences are within TOLERANCE of the largest entry.
 */
function expectFiniteDifferences(label: string, param: Tensor, analytic: readonly number[], loss: () => number): void {
  const scale = Math.max(...analytic.map(Math.abs));
  expect(scale, `${label}: gradient is not zero`).toBeGreaterThan(1e-6);
  const largest = analytic
    .map((g, i) => [Math.abs(g), i] as const)
    .sort((a, b) => b[0] - a[0])
    .slice(0, 3)
    .map(([, i]) => i);
  for (const i of new Set([...largest, 1, 7])) {
    const original = host(param)[i]!;
    const up = setElement(param, i, original + STEP);
    const plus = loss();
    const down = setElement(param, i, original - STEP);
    const minus = loss();
    expect(setElement(param, i, original)).toBe(original);
    const numeric = (plus - minus) / (up - down);
    const error = Math.abs(numeric - analytic[i]!) / scale;
    if (!(error <= TOLERANCE))
      throw new Error(`${label}[${i}]: backward ${analytic[i]} vs central difference ${numeric} (${error.toExponential(2)} of max)`);
  }
}

describe("training gradients (qwen2 fixture, float64)", () => {
  let model: LoadedModel;
  let ids: Tensor;
  let labels: Tensor;
  let hfLoss: number;
  /** Row 1 ends in 4 padding positions (their KL must not count). */
  const maskValues = Array.from({ length: 32 }, (_, i) => (i >= 28 ? 0 : 1));
  let mask: Tensor;
  beforeAll(() => {
    model = loadModel(QWEN2, { dtype: "f64" });
    const expected = loadSafetensors(`${QWEN2}/expected.safetensors`).tensors;
    ids = keep(expected.get("input_ids")!);
    labels = keep(expected.get("labels")!);
    hfLoss = expected.get("loss")!.toNumber();
    for (const [name, t] of expected) if (name !== "input_ids" && name !== "labels") t.dispose();
    mask = keep(tensor(BigInt64Array.from(maskValues.map(BigInt)), { shape: [2, 16] }));
  });
  afterAll(() => {
    model.dispose();
    for (const t of [ids, labels, mask]) t.dispose();
  });
  useLeakCheck();

  const forward = (): Tensor => model.decoder.forward(ids, { attentionMask: mask }).logits!;
  const gradOf = (t: Tensor): number[] => tidy(() => host(t.grad!));

  it("the KL penalty is exactly 0 at the start, with a zero gradient (LoRA with B = 0; zero steering vector)", () => {
    const adapter = LoraAdapter.create(model.spec, { r: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "down_proj"] });
    model.decoder.adapters.attach(adapter);
    try {
      tidy(() => {
        const reference = noGrad(() => model.decoder.adapters.withoutAdapters(forward));
        const kl = klPenalty(forward(), reference, mask);
        expect(kl.toNumber()).toBe(0);
        kl.backward();
      });
      // Zero up to float32 rounding of the penalty's backward (a random B gives entries > 1e-6 below).
      for (const p of adapter.parameters()) expect(Math.max(...gradOf(p).map(Math.abs))).toBeLessThanOrEqual(1e-8);
    } finally {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }
    const steering = SteeringVector.create(model.decoder, 1);
    const handle = steering.attach(model.decoder);
    try {
      tidy(() => {
        const reference = noGrad(() => steering.withoutSteering(forward));
        const kl = klPenalty(forward(), reference, mask);
        expect(kl.toNumber()).toBe(0);
        kl.backward();
      });
      expect(Math.max(...gradOf(steering.vector).map(Math.abs))).toBeLessThanOrEqual(1e-8);
    } finally {
      handle.remove();
      steering.dispose();
    }
  });

  it("klPenalty is KL(reference || current) over mask positions, with gradient (softmax(current) - softmax(reference)) / count to current only; token_vocab = token / vocab", () => {
    manualSeed(9);
    const syntheticMask = [1, 1, 0, 1, 0, 1];
    const currentLeaf = keep(tidy(() => randn([2, 3, VOCAB], { dtype: "f64" }).mul(2)).requiresGrad_());
    const referenceLeaf = keep(tidy(() => randn([2, 3, VOCAB], { dtype: "f64" }).mul(2)).requiresGrad_());
    try {
      tidy(() => {
        const m = tensor(BigInt64Array.from(syntheticMask.map(BigInt)), { shape: [2, 3] });
        const cur = host(currentLeaf);
        const ref = host(referenceLeaf);
        const kl = klPenalty(currentLeaf, referenceLeaf, m);
        const want = klHost(ref, cur, syntheticMask);
        expect(Math.abs(kl.toNumber() - want) / want).toBeLessThanOrEqual(1e-5);
        // Not the other direction, not over every position.
        expect(Math.abs(klHost(cur, ref, syntheticMask) - want) / want).toBeGreaterThan(1e-2);
        expect(
          Math.abs(
            klHost(
              ref,
              cur,
              syntheticMask.map(() => 1),
            ) - want,
          ) / want,
        ).toBeGreaterThan(1e-2);
        const klVocab = klPenalty(currentLeaf, referenceLeaf, m, "token_vocab").toNumber();
        expect(Math.abs(klVocab * VOCAB - kl.toNumber()) / kl.toNumber()).toBeLessThanOrEqual(1e-6);
        kl.backward();
        expect(referenceLeaf.grad).toBeNull();
        const grad = host(currentLeaf.grad!);
        const lc = logSoftmaxRows(cur, 6);
        const lr = logSoftmaxRows(ref, 6);
        const count = syntheticMask.reduce((a, b) => a + b, 0);
        let worst = 0;
        grad.forEach((g, k) => {
          const row = Math.floor(k / VOCAB);
          const expected = (syntheticMask[row]! * (Math.exp(lc[k]!) - Math.exp(lr[k]!))) / count;
          worst = Math.max(worst, Math.abs(g - expected));
        });
        expect(worst).toBeLessThanOrEqual(1e-7);
        expect(Math.max(...grad.map(Math.abs))).toBeGreaterThan(1e-3);
      });
    } finally {
      currentLeaf.dispose();
      referenceLeaf.dispose();
    }
  });

  describe("with a LoRA adapter whose B is random", () => {
    let adapter: LoraAdapter;
    let reference: Tensor;
    let referenceHost: number[];
    beforeAll(() => {
      manualSeed(1);
      adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 4, targetModules: ["v_proj", "down_proj"] }, { initB: "random" });
      model.decoder.adapters.attach(adapter);
      reference = keep(noGrad(() => model.decoder.adapters.withoutAdapters(forward)));
      referenceHost = host(reference);
    });
    afterAll(() => {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
      reference.dispose();
    });

    it("klPenalty on the model's logits equals an independent float64 KL(reference || current) (float32 inside: 1e-4)", () => {
      tidy(() => {
        const current = forward();
        const kl = klPenalty(current, reference, mask).toNumber();
        const want = klHost(referenceHost, host(current), maskValues);
        expect(want).toBeGreaterThan(1e-4);
        expect(Math.abs(kl - want) / want).toBeLessThanOrEqual(1e-4);
      });
    });

    it("its gradient w.r.t. LoRA A and B matches central differences", () => {
      tidy(() => klPenalty(forward(), reference, mask).backward());
      const exactKl = (): number => tidy(() => klHost(referenceHost, host(forward()), maskValues));
      try {
        expect(adapter.modules.size).toBe(4);
        for (const [module, { A, B }] of adapter.modules) {
          expectFiniteDifferences(`${module}.lora_A`, A, gradOf(A), exactKl);
          expectFiniteDifferences(`${module}.lora_B`, B, gradOf(B), exactKl);
        }
      } finally {
        for (const p of adapter.parameters()) p.grad = null;
      }
    });
  });

  describe("with a steering vector", () => {
    let steering: SteeringVector;
    let handle: { remove(): void };
    beforeAll(() => {
      steering = SteeringVector.create(model.decoder, 0, { site: "down_proj", alpha: 1.5 });
      handle = steering.attach(model.decoder);
      manualSeed(2);
      noGrad(() =>
        tidy(() => {
          steering.vector.copy_(randn([64]).mul(0.5));
        }),
      );
    });
    afterAll(() => {
      handle.remove();
      steering.dispose();
    });

    it("the KL penalty's gradient w.r.t. the vector matches central differences", () => {
      const reference = keep(noGrad(() => steering.withoutSteering(forward)));
      const referenceHost = host(reference);
      try {
        tidy(() => {
          const kl = klPenalty(forward(), reference, mask);
          expect(kl.toNumber()).toBeGreaterThan(1e-4);
          kl.backward();
        });
        expectFiniteDifferences("steering.vector", steering.vector, gradOf(steering.vector), () =>
          tidy(() => klHost(referenceHost, host(forward()), maskValues)),
        );
      } finally {
        steering.vector.grad = null;
        reference.dispose();
      }
    });

    it("the causal-LM loss's gradient w.r.t. the vector matches central differences", () => {
      const labelsHost = host(labels);
      const exactCe = (): number => tidy(() => ceHost(host(model.decoder.forward(ids).logits!), labelsHost, 2, 16));
      try {
        tidy(() => {
          const loss = causalLmLoss(model.decoder.forward(ids).logits!, labels);
          const exact = exactCe();
          expect(Math.abs(loss.toNumber() - exact) / exact).toBeLessThanOrEqual(1e-6);
          loss.backward();
        });
        expectFiniteDifferences("steering.vector", steering.vector, gradOf(steering.vector), exactCe);
      } finally {
        steering.vector.grad = null;
      }
    });
  });

  it("steering at down_proj equals steering at resid_post for qwen2 (no post-feedforward norm), not at resid_mid", () => {
    manualSeed(4);
    const v = keep(tidy(() => randn([64]).mul(0.3)));
    const logitsAt = (site: "down_proj" | "resid_post" | "resid_mid" | null, alpha = 2): Tensor => {
      if (site === null) return model.decoder.forward(ids).logits!;
      // resid_mid is not a steering site; the same addition is made there by a plain hook, for contrast.
      if (site === "resid_mid")
        return model.decoder.hooks.withHooks(
          [["blocks.0.resid_mid", (x) => x.add(v.to(x.dtype), alpha)]],
          () => model.decoder.forward(ids).logits!,
        );
      const s = SteeringVector.create(model.decoder, 0, { site, alpha });
      noGrad(() => s.vector.copy_(v));
      const h = s.attach(model.decoder);
      try {
        return model.decoder.forward(ids).logits!;
      } finally {
        h.remove();
        s.dispose();
      }
    };
    try {
      tidy(() => {
        const base = logitsAt(null);
        const down = logitsAt("down_proj");
        const post = logitsAt("resid_post");
        expect(maxAbs(down, base)).toBeGreaterThan(1e-2);
        expect(maxAbs(down, post)).toBeLessThanOrEqual(1e-6);
        expect(maxAbs(logitsAt("resid_mid"), down)).toBeGreaterThan(1e-3);
        // alpha scales the vector: alpha 2 with v equals alpha 1 with 2v.
        const doubled = SteeringVector.create(model.decoder, 0, { site: "down_proj", alpha: 1 });
        noGrad(() => doubled.vector.copy_(v.mul(2)));
        const h = doubled.attach(model.decoder);
        try {
          expect(maxAbs(model.decoder.forward(ids).logits!, down)).toBeLessThanOrEqual(1e-9);
        } finally {
          h.remove();
          doubled.dispose();
        }
      });
    } finally {
      v.dispose();
    }
  });

  it("gradient checkpointing gives the plain backward's LoRA gradients and leaves the RNG stream where the plain pass does", () => {
    const adapter = LoraAdapter.create(
      model.spec,
      { r: 2, alpha: 4, dropout: 0.3, targetModules: ["q_proj", "v_proj", "down_proj"] },
      { initB: "random" },
    );
    model.decoder.adapters.attach(adapter);
    model.decoder.adapters.training = true;
    const pass = (checkpointed: boolean): { grads: number[][]; rng: number[]; next: number[] } => {
      manualSeed(5);
      tidy(() => {
        if (!checkpointed) {
          causalLmLoss(model.decoder.forward(ids).logits!, labels).backward();
          return;
        }
        const run = checkpointedForward(model.decoder, ids);
        try {
          causalLmLoss(run.logits, labels).backward();
          run.finish();
        } finally {
          run.dispose();
        }
      });
      const grads = adapter.parameters().map((p) => gradOf(p));
      for (const p of adapter.parameters()) p.grad = null;
      return { grads, rng: tidy(() => host(getRngState())), next: tidy(() => host(rand([4]))) };
    };
    try {
      const plain = pass(false);
      const checkpointed = pass(true);
      expect(checkpointed.grads).toEqual(plain.grads);
      // The next random draws (the following micro-batch's dropout masks) must not depend on checkpointing.
      expect(checkpointed.rng).toEqual(plain.rng);
      expect(checkpointed.next).toEqual(plain.next);
    } finally {
      model.decoder.adapters.training = false;
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }
  });

  it("a few AdamW steps on LoRA parameters lower the loss on a fixed batch", () => {
    const adapter = LoraAdapter.create(model.spec, {
      r: 4,
      alpha: 8,
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    });
    model.decoder.adapters.attach(adapter);
    const optimizer = new AdamW(adapter.parameters(), { lr: 1e-2, weightDecay: 0 });
    const losses: number[] = [];
    try {
      for (let step = 0; step < 8; step++) {
        tidy(() => {
          const loss = causalLmLoss(model.decoder.forward(ids).logits!, labels);
          losses.push(loss.toNumber());
          loss.backward();
        });
        optimizer.step();
        optimizer.zeroGrad();
      }
      const final = tidy(() => causalLmLoss(model.decoder.forward(ids).logits!, labels).toNumber());
      // With B = 0 the first loss is the base model's: Hugging Face's loss on this batch.
      expect(Math.abs(losses[0]! - hfLoss)).toBeLessThanOrEqual(1e-5);
      expect(final).toBeLessThan(losses[0]! - 0.05);
      expect(losses[losses.length - 1]!).toBeLessThan(losses[0]!);
    } finally {
      optimizer.dispose();
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }
  });
});
