// Norm manipulations and experiments on learned solutions (tiny Qwen2): orthogonalPerturbation, perturbInPlace,
// adapterNorm / rescaleAdapter / snapshot, efficiency curves (steering vector, LoRA), stability and significance
// (KL), against losses and KLs recomputed here; every test leaves the live tensor count unchanged.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { adapterEfficiency, significance, stability, steeringEfficiency } from "../../src/analysis/experiments.js";
import { datasetLoss, lossSubset } from "../../src/analysis/loss.js";
import { adapterNorm, moduleNorms, orthogonalPerturbation, perturbInPlace, rescaleAdapter, snapshot } from "../../src/analysis/rescale.js";
import { addHook } from "../../src/hooks/interventions.js";
import { layerPoint } from "../../src/hooks/points.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { keep, noGrad, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { type Example, readChatDataset } from "../../src/train/data.js";
import { SteeringVector } from "../../src/train/steering.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { makeTinyModel, MEDICAL } from "../helpers/tiny-model.js";
import { cos, fixedTensor, values as host, maxAbsDiff, norm } from "../helpers/numeric.js";

let work: string;
let model: LoadedModel;
let tokenizer: ChatTokenizer;
let subset: Example[];
let pad: number;
const D = 32;

beforeAll(() => {
  let modelDir: string;
  ({ work, modelDir } = makeTinyModel("emlab-solutions-"));
  model = loadModel(modelDir);
  tokenizer = ChatTokenizer.fromDir(modelDir);
  subset = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 3, maxLength: 100, seed: 42 });
  pad = tokenizer.padTokenId!;
});
afterAll(() => {
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

const relClose = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

/** ||B A||_F of one module from host copies. */
function moduleNormJs(B: Tensor, A: Tensor): number {
  const [out, r] = B.shape as [number, number];
  const inp = A.size(1);
  const b = host(B);
  const a = host(A);
  let sq = 0;
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < inp; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b[i * r + k]! * a[k * inp + j]!;
      sq += s * s;
    }
  }
  return Math.sqrt(sq);
}

describe("orthogonalPerturbation and perturbInPlace", () => {
  useLeakCheck();

  it("preserves the norm and gives cos(x, x') = sqrt(1 - eps^2), for f32 and f64 tensors of any shape", () => {
    tidy(() => {
      for (const x of [fixedTensor([D], 1), fixedTensor([4, 8], 2, 5), fixedTensor([3, 7], 3).to("f64")]) {
        const xs = host(x);
        for (const eps of [0.05, 0.3, 0.7, 0.99, 1]) {
          const y = orthogonalPerturbation(x, eps, 7);
          expect(y.shape).toEqual(x.shape);
          expect(y.dtype).toBe(x.dtype);
          const ys = host(y);
          expect(Math.abs(norm(ys) - norm(xs)), `norm at eps ${eps}`).toBeLessThanOrEqual(1e-6 * norm(xs));
          expect(Math.abs(cos(xs, ys) - Math.sqrt(1 - eps * eps)), `cosine at eps ${eps}`).toBeLessThanOrEqual(1e-6);
        }
        expect(host(x)).toEqual(xs); // the input is not modified
      }
    });
  });

  it("eps 0 is the identity; eps outside [0, 1] throws; seeded", () => {
    tidy(() => {
      const x = fixedTensor([D], 4);
      expect(host(orthogonalPerturbation(x, 0, 3))).toEqual(host(x));
      for (const eps of [-0.01, 1.0001, Number.NaN, 2]) expect(() => orthogonalPerturbation(x, eps, 0), String(eps)).toThrow(RangeError);
      const a = host(orthogonalPerturbation(x, 0.5, 11));
      expect(host(orthogonalPerturbation(x, 0.5, 11))).toEqual(a);
      const b = host(orthogonalPerturbation(x, 0.5, 12));
      expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-3);
    });
  });

  it("perturbInPlace perturbs every tensor in place (its own noise each), keeping norms, also for tensors that require grad", () => {
    const make = () => [fixedTensor([D], 5), keep(fixedTensor([4, 8], 6).requiresGrad_()), fixedTensor([D], 5)];
    const ts = make();
    const again = make();
    try {
      const originals = ts.map(host);
      perturbInPlace(ts, 0.4, 3);
      ts.forEach((t, i) => {
        const now = host(t);
        expect(Math.abs(norm(now) - norm(originals[i]!))).toBeLessThanOrEqual(1e-6 * norm(originals[i]!));
        expect(Math.abs(cos(now, originals[i]!) - Math.sqrt(1 - 0.16))).toBeLessThanOrEqual(1e-6);
      });
      expect(ts[1]!.requiresGrad).toBe(true);
      // Tensors 0 and 2 started equal: different noise per tensor makes them differ now.
      expect(maxAbsDiff(host(ts[0]!), host(ts[2]!))).toBeGreaterThan(1e-3);
      perturbInPlace(again, 0.4, 3);
      again.forEach((t, i) => expect(host(t)).toEqual(host(ts[i]!)));
    } finally {
      for (const t of [...ts, ...again]) t.dispose();
    }
  });
});

describe("adapterNorm, rescaleAdapter and snapshot", () => {
  useLeakCheck();
  const create = (r: number, initB: "random" | "zeros" = "random") =>
    LoraAdapter.create(model.spec, { r, alpha: 2 * r, targetModules: ["q_proj", "v_proj", "down_proj"] }, { initB });

  it("rank 1: adapterNorm is ||B|| over all modules; rescaling scales every B by one factor to reach the target", () => {
    const a = create(1);
    try {
      const bs = [...a.modules.values()].map((m) => host(m.B));
      const as = [...a.modules.values()].map((m) => host(m.A));
      const before = Math.sqrt(bs.reduce((s, b) => s + norm(b) ** 2, 0));
      expect(relClose(adapterNorm(a), before, 1e-6)).toBe(true);
      rescaleAdapter(a, 2.5);
      const after = [...a.modules.values()].map((m) => host(m.B));
      expect(Math.sqrt(after.reduce((s, b) => s + norm(b) ** 2, 0))).toBeCloseTo(2.5, 5);
      expect(adapterNorm(a)).toBeCloseTo(2.5, 5);
      after.forEach((b, i) =>
        expect(
          maxAbsDiff(
            b,
            bs[i]!.map((v) => (v * 2.5) / before),
          ),
        ).toBeLessThanOrEqual(1e-6),
      );
      [...a.modules.values()].forEach((m, i) => expect(host(m.A)).toEqual(as[i]));
    } finally {
      a.dispose();
    }
  });

  it("rank > 1: moduleNorms are ||BA||_F, adapterNorm their mean; rescaling brings every module's ||BA||_F to the target", () => {
    const a = create(4);
    try {
      const expected = new Map([...a.modules].map(([name, m]) => [name, moduleNormJs(m.B, m.A)]));
      const norms = moduleNorms(a);
      expect([...norms.keys()]).toEqual([...a.modules.keys()]);
      for (const [name, n] of norms) expect(relClose(n, expected.get(name)!, 1e-5), name).toBe(true);
      const values = [...expected.values()];
      expect(relClose(adapterNorm(a), values.reduce((s, v) => s + v, 0) / values.length, 1e-5)).toBe(true);
      // The modules start with different norms (so a common target is a real change).
      expect(Math.max(...values) / Math.min(...values)).toBeGreaterThan(1.05);
      const bs = new Map([...a.modules].map(([name, m]) => [name, host(m.B)]));
      rescaleAdapter(a, 0.7);
      for (const [name, m] of a.modules) {
        expect(relClose(moduleNormJs(m.B, m.A), 0.7, 1e-5), name).toBe(true);
        expect(
          maxAbsDiff(
            host(m.B),
            bs.get(name)!.map((v) => (v * 0.7) / expected.get(name)!),
          ),
        ).toBeLessThanOrEqual(1e-6);
      }
    } finally {
      a.dispose();
    }
  });

  it("a zero adapter stays zero (no NaN) when rescaled", () => {
    for (const r of [1, 4]) {
      const a = create(r, "zeros");
      try {
        rescaleAdapter(a, 3);
        for (const m of a.modules.values()) expect(host(m.B).every((v) => v === 0)).toBe(true);
        expect(adapterNorm(a)).toBe(0);
      } finally {
        a.dispose();
      }
    }
  });

  it("snapshot restores the tensors exactly after in-place changes", () => {
    const a = create(4);
    try {
      const params = a.parameters();
      const saved = params.map(host);
      const restore = snapshot(params);
      rescaleAdapter(a, 9);
      perturbInPlace(params, 0.8, 1);
      expect(maxAbsDiff(host(params[1]!), saved[1]!)).toBeGreaterThan(1e-3);
      restore();
      params.forEach((p, i) => expect(host(p)).toEqual(saved[i]));
    } finally {
      a.dispose();
    }
  });
});

describe("efficiency curves", () => {
  useLeakCheck();

  it("steering: scale 1 is the loss with the vector as is, scale 0 the loss with steering off, s the loss with s * v; the vector is restored", () => {
    const sv = new SteeringVector(1, "down_proj", 1.5, keep(fixedTensor([D], 41, 0.3).requiresGrad_()));
    const handle = sv.attach(model.decoder);
    try {
      const v = host(sv.vector);
      const asIs = datasetLoss(model, subset, { padId: pad });
      const off = sv.withoutSteering(() => datasetLoss(model, subset, { padId: pad }));
      noGrad(() => tidy(() => void sv.vector.mul_(0.5)));
      const half = datasetLoss(model, subset, { padId: pad });
      noGrad(() => tidy(() => void sv.vector.copy_(tensor(Float32Array.from(v)))));
      // Scale 1 first and 0.5 last, so the vector must really be restored afterwards.
      const points = steeringEfficiency(model, sv, subset, [1, 0, 0.5], pad);
      expect(points.map((p) => p.scale)).toEqual([1, 0, 0.5]);
      points.forEach((p) => expect(relClose(p.norm, p.scale * norm(v), 1e-6)).toBe(true));
      expect(relClose(points[0]!.loss, asIs, 1e-7)).toBe(true);
      expect(relClose(points[1]!.loss, off, 1e-7)).toBe(true);
      expect(relClose(points[2]!.loss, half, 1e-7)).toBe(true);
      // The three losses are distinct, so a mix-up would show.
      expect(Math.abs(asIs - off)).toBeGreaterThan(1e-3);
      expect(Math.abs(half - off)).toBeGreaterThan(1e-4);
      expect(host(sv.vector)).toEqual(v);
      expect(sv.vector.requiresGrad).toBe(true);
    } finally {
      handle.remove();
      sv.dispose();
    }
  });

  /** The loss with every module's B multiplied by factors.get(module), restored afterwards. */
  function lossWithScaledB(adapter: LoraAdapter, factors: (name: string) => number): number {
    const restore = snapshot([...adapter.modules.values()].map((m) => m.B));
    try {
      noGrad(() => {
        for (const [name, m] of adapter.modules) m.B.mul_(factors(name));
      });
      return datasetLoss(model, subset, { padId: pad });
    } finally {
      restore();
    }
  }

  it("rank-1 adapter: scale 1 is the adapter's loss, scale 0 the base loss, s the loss with every B times s; B restored", () => {
    const adapter = LoraAdapter.create(
      model.spec,
      { r: 1, alpha: 2, targetModules: ["q_proj", "v_proj", "down_proj"] },
      { initB: "random" },
    );
    model.decoder.adapters.attach(adapter);
    try {
      const bs = [...adapter.modules.values()].map((m) => host(m.B));
      const reference = Math.sqrt(bs.reduce((s, b) => s + norm(b) ** 2, 0));
      const asIs = datasetLoss(model, subset, { padId: pad });
      const base = model.decoder.adapters.withoutAdapters(() => datasetLoss(model, subset, { padId: pad }));
      const tripled = lossWithScaledB(adapter, () => 3);
      const points = adapterEfficiency(model, adapter, subset, [0, 1, 3], pad);
      points.forEach((p) => expect(relClose(p.norm, p.scale * reference, 1e-6)).toBe(true));
      expect(relClose(points[1]!.loss, asIs, 1e-6)).toBe(true);
      expect(relClose(points[0]!.loss, base, 1e-6)).toBe(true);
      expect(relClose(points[2]!.loss, tripled, 1e-6)).toBe(true);
      expect(Math.abs(asIs - base)).toBeGreaterThan(1e-4);
      expect(Math.abs(tripled - asIs)).toBeGreaterThan(1e-4);
      [...adapter.modules.values()].forEach((m, i) => expect(host(m.B)).toEqual(bs[i]));
    } finally {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }
  });

  it("rank-4 adapter: scale 0 is the base loss, scale s the loss with every module's ||BA||_F brought to s * mean norm", () => {
    const adapter = LoraAdapter.create(model.spec, { r: 4, alpha: 8, targetModules: ["q_proj", "down_proj"] }, { initB: "random" });
    model.decoder.adapters.attach(adapter);
    try {
      const norms = new Map([...adapter.modules].map(([name, m]) => [name, moduleNormJs(m.B, m.A)]));
      const mean = [...norms.values()].reduce((s, v) => s + v, 0) / norms.size;
      const base = model.decoder.adapters.withoutAdapters(() => datasetLoss(model, subset, { padId: pad }));
      const expected = [1, 2].map((s) => lossWithScaledB(adapter, (name) => (s * mean) / norms.get(name)!));
      const bs = [...adapter.modules.values()].map((m) => host(m.B));
      const points = adapterEfficiency(model, adapter, subset, [0, 1, 2], pad);
      expect(relClose(points[0]!.loss, base, 1e-6)).toBe(true);
      expect(relClose(points[1]!.loss, expected[0]!, 1e-5)).toBe(true);
      expect(relClose(points[2]!.loss, expected[1]!, 1e-5)).toBe(true);
      points.forEach((p) => expect(relClose(p.norm, p.scale * mean, 1e-5)).toBe(true));
      [...adapter.modules.values()].forEach((m, i) => expect(host(m.B)).toEqual(bs[i]));
    } finally {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }
  });
});

describe("stability", () => {
  useLeakCheck();

  /** (L - L0) / (Lbase - L0) * 100 per seed, then mean and sample std, recomputed from the losses. */
  function summary(losses: number[], l0: number, lBase: number): { mean: number; std: number; population: number } {
    const rel = losses.map((l) => (100 * (l - l0)) / (lBase - l0));
    const mean = rel.reduce((a, b) => a + b, 0) / rel.length;
    const std = rel.length > 1 ? Math.sqrt(rel.reduce((a, b) => a + (b - mean) ** 2, 0) / (rel.length - 1)) : 0;
    // numpy's np.std (ddof 0): what the study reports.
    const population = Math.sqrt(rel.reduce((a, b) => a + (b - mean) ** 2, 0) / rel.length);
    return { mean, std, population };
  }

  it("steering vector: eps 0 gives 0%, the metric is recomputable from the losses, each loss is that of the perturbed vector, the vector is restored", () => {
    const sv = new SteeringVector(1, "down_proj", 1, keep(fixedTensor([D], 51, 0.3).requiresGrad_()));
    const handle = sv.attach(model.decoder);
    try {
      const v = host(sv.vector);
      const l0 = datasetLoss(model, subset, { padId: pad });
      const baseLoss = sv.withoutSteering(() => datasetLoss(model, subset, { padId: pad }));
      // An independent loss for eps 0.3, seed 2: perturb a copy-restored vector by hand.
      const restore = snapshot([sv.vector]);
      perturbInPlace([sv.vector], 0.3, 2);
      expect(Math.abs(cos(host(sv.vector), v) - Math.sqrt(1 - 0.09))).toBeLessThanOrEqual(1e-6);
      const byHand = datasetLoss(model, subset, { padId: pad });
      restore();
      const r = stability(model, [sv.vector], subset, { eps: [0, 0.3, 1], seeds: [1, 2, 3], baseLoss, padId: pad });
      expect(relClose(r.l0, l0, 1e-7)).toBe(true);
      expect(r.lBase).toBe(baseLoss);
      expect(r.points.map((p) => p.eps)).toEqual([0, 0.3, 1]);
      const zero = r.points[0]!;
      expect(zero.losses.every((l) => l === r.l0)).toBe(true);
      expect(Math.abs(zero.mean)).toBe(0);
      expect(zero.std).toBe(0);
      expect(relClose(r.points[1]!.losses[1]!, byHand, 1e-7)).toBe(true);
      for (const p of r.points) {
        expect(p.losses.length).toBe(3);
        const s = summary(p.losses, r.l0, r.lBase);
        expect(Math.abs(p.mean - s.mean), `mean at eps ${p.eps}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(s.mean)));
        expect(Math.abs(p.std - s.std), `std at eps ${p.eps}`).toBeLessThanOrEqual(1e-9 * Math.max(1, s.std));
        expect(Math.abs(p.stdPopulation - s.population), `population std at eps ${p.eps}`).toBeLessThanOrEqual(
          1e-9 * Math.max(1, s.population),
        );
        if (p.eps > 0) expect(p.stdPopulation).toBeLessThan(p.std);
        expect(p.std).toBeGreaterThanOrEqual(0);
      }
      // Perturbed solutions lose something, and differently per seed.
      expect(r.points[2]!.losses.some((l) => Math.abs(l - r.l0) > 1e-4)).toBe(true);
      expect(r.points[2]!.std).toBeGreaterThan(0);
      expect(host(sv.vector)).toEqual(v);
    } finally {
      handle.remove();
      sv.dispose();
    }
  });

  it("LoRA parameters: eps 0 gives 0%, every A and B restored afterwards", () => {
    const adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 4, targetModules: ["v_proj", "down_proj"] }, { initB: "random" });
    model.decoder.adapters.attach(adapter);
    try {
      const params = adapter.parameters();
      const saved = params.map(host);
      const baseLoss = model.decoder.adapters.withoutAdapters(() => datasetLoss(model, subset, { padId: pad }));
      const r = stability(model, params, subset, { eps: [0, 0.5], seeds: [4, 5], baseLoss, padId: pad });
      expect(Math.abs(r.points[0]!.mean)).toBe(0);
      expect(r.points[1]!.losses.every((l) => l !== r.l0)).toBe(true);
      const s = summary(r.points[1]!.losses, r.l0, baseLoss);
      expect(Math.abs(r.points[1]!.mean - s.mean)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(s.mean)));
      params.forEach((p, i) => expect(host(p)).toEqual(saved[i]));
    } finally {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }
  });
});

describe("significance", () => {
  useLeakCheck();
  const TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon in May.",
    "Researchers measured the temperature of the lake every morning for three years and found a slow but steady warming trend that matched the regional climate models.",
    "Bread rises because yeast produces carbon dioxide while it ferments the sugars.",
  ];
  const SHORT = "Too short.";

  it("KL is exactly 0 at norm 0 and positive above; points come per vector and norm", () => {
    tidy(() => {
      const vectors = [
        { label: "a", vector: fixedTensor([D], 61) },
        { label: "b", vector: fixedTensor([D], 62) },
      ];
      const points = significance(model, tokenizer, TEXTS, vectors, { layer: 1, norms: [0, 0.5, 2], batchSize: 2 });
      expect(points.map((p) => [p.label, p.norm])).toEqual([
        ["a", 0],
        ["a", 0.5],
        ["a", 2],
        ["b", 0],
        ["b", 0.5],
        ["b", 2],
      ]);
      for (const p of points) {
        if (p.norm === 0) expect(Math.abs(p.kl)).toBe(0);
        else expect(p.kl).toBeGreaterThan(0);
      }
      // Nothing is dropped silently: a short text (the study's data filter drops those of 10 tokens or fewer)
      // counts, and a document without tokens is an error.
      expect(tokenizer.encode(SHORT).length).toBeLessThanOrEqual(10);
      const withShort = significance(model, tokenizer, [TEXTS[0]!, SHORT, TEXTS[1]!, TEXTS[2]!], vectors, {
        layer: 1,
        norms: [0, 0.5, 2],
        batchSize: 2,
      });
      expect(withShort.filter((p) => p.norm > 0).every((p, i) => p.kl !== points.filter((q) => q.norm > 0)[i]!.kl)).toBe(true);
      expect(() => significance(model, tokenizer, [TEXTS[0]!, ""], vectors, { layer: 1, norms: [1], batchSize: 2 })).toThrow(
        /document 2 has no tokens/,
      );
      expect(() => significance(model, tokenizer, [], vectors, { layer: 1, norms: [1] })).toThrow(/no documents/);
    });
  });

  it("includePads changes the average only when batches are padded; without pads the batch size does not matter", () => {
    tidy(() => {
      const vectors = [{ label: "a", vector: fixedTensor([D], 63) }];
      const lengths = TEXTS.map((t) => tokenizer.encode(t).length);
      expect(new Set(lengths).size).toBe(3);
      const run = (texts: string[], includePads: boolean, batchSize: number) =>
        significance(model, tokenizer, texts, vectors, { layer: 1, norms: [1.5], batchSize, includePads })[0]!.kl;
      const same = [TEXTS[0]!, TEXTS[0]!];
      expect(run(same, true, 2)).toBe(run(same, false, 2));
      const excluded = run(TEXTS, false, 3);
      const included = run(TEXTS, true, 3);
      expect(Math.abs(included - excluded)).toBeGreaterThan(1e-6 * excluded);
      expect(relClose(run(TEXTS, false, 1), excluded, 1e-5)).toBe(true);
      // One text per batch has no padding: including pads changes nothing then.
      expect(run(TEXTS, true, 1)).toBe(run(TEXTS, false, 1));
    });
  });

  it("KL for one text equals KL(base || steered) averaged over its positions, computed here from the logits", () => {
    tidy(() => {
      const vector = fixedTensor([D], 64);
      const text = TEXTS[1]!;
      const ids = tokenizer.encode(text);
      const input = tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length] });
      const alpha = 0.5;
      const target = 2;
      const v = host(vector);
      const added = tensor(Float32Array.from(v, (x) => (x * target) / norm(v)));
      const base = model.decoder.forward(input).logits!.toArray() as Float32Array;
      const handle = model.decoder.hooks.add(layerPoint(1, "resid_post"), addHook(added, alpha));
      let steered: Float32Array;
      try {
        steered = model.decoder.forward(input).logits!.toArray() as Float32Array;
      } finally {
        handle.remove();
      }
      const vocab = base.length / ids.length;
      const logSoftmax = (row: Float32Array): Float64Array => {
        let max = -Infinity;
        for (const x of row) max = Math.max(max, x);
        let sum = 0;
        for (const x of row) sum += Math.exp(x - max);
        const lse = max + Math.log(sum);
        return Float64Array.from(row, (x) => x - lse);
      };
      let total = 0;
      for (let t = 0; t < ids.length; t++) {
        const p = logSoftmax(base.subarray(t * vocab, (t + 1) * vocab));
        const q = logSoftmax(steered.subarray(t * vocab, (t + 1) * vocab));
        for (let k = 0; k < vocab; k++) total += Math.exp(p[k]!) * (p[k]! - q[k]!);
      }
      const expected = total / ids.length;
      expect(expected).toBeGreaterThan(1e-4);
      const [point] = significance(model, tokenizer, [text], [{ label: "v", vector }], { layer: 1, alpha, norms: [target] });
      expect(relClose(point!.kl, expected, 1e-4)).toBe(true);
      // alpha multiplies the rescaled vector: alpha 1 at norm 1 is alpha 0.5 at norm 2.
      const [same] = significance(model, tokenizer, [text], [{ label: "v", vector }], { layer: 1, alpha: 1, norms: [1] });
      expect(relClose(same!.kl, point!.kl, 1e-6)).toBe(true);
    });
  });
});
