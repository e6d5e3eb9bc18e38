// Finer hook points (per-head q/k/v, scores, pattern, z; MLP gate/up/hidden), the activation cache with
// gradients on a frozen model, and activation patching, on the tiny Hugging Face fixtures. Expected values
// are computed here in plain JS from the captured inputs of each step (softmax attention, the gated MLP,
// RMSNorm + lm_head), by central differences, or in closed form.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdShapeError } from "../../src/generate/ids.js";
import { runWithCache, patchActivations } from "../../src/hooks/cache.js";
import { addHook, captureHook, gradientHook } from "../../src/hooks/interventions.js";
import { type HookPoint, layerPoints } from "../../src/hooks/points.js";
import type { HookFn } from "../../src/hooks/registry.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { enableGrad, linear, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { expectClose, seededValues, values } from "../helpers/numeric.js";

const MODELS = join(import.meta.dirname, "..", "fixtures", "hf", "models");
const IDS = [
  [3, 17, 99, 250, 4, 8, 300, 12, 77, 5, 6, 401, 9, 2, 33, 120],
  [3, 17, 99, 250, 4, 8, 301, 13, 70, 5, 6, 400, 9, 2, 31, 121],
];
const idTensorOf = (rows: number[][]) => tensor(BigInt64Array.from(rows.flat(), BigInt), { shape: [rows.length, rows[0]!.length] });

describe.each(["qwen2", "gemma2"])("finer hook points on the tiny %s", (family) => {
  useLeakCheck();
  let model: LoadedModel;
  beforeAll(() => {
    model = loadModel(join(MODELS, family));
  });
  afterAll(() => model?.dispose());

  it("q, k, scores, pattern, v and z fit softmax(q k^T * scale + causal mask) v, and gate/up/hidden the gated MLP", () => {
    const spec = model.spec;
    const points = [
      "attn.q",
      "attn.k",
      "attn.v",
      "attn.scores",
      "attn.pattern",
      "attn.z",
      "mlp.gate",
      "mlp.up",
      "mlp.hidden",
      "down_proj",
    ] as const;
    const cache = runWithCache(model.decoder, IDS, { points: points.map((p) => `blocks.1.${p}` as HookPoint) });
    try {
      const get = (p: string) => cache.get(`blocks.1.${p}` as HookPoint);
      const [batch, heads, pos, dh] = get("attn.q").shape as [number, number, number, number];
      expect([batch, heads, pos, dh]).toEqual([2, spec.numHeads, 16, spec.headDim]);
      expect(get("attn.k").shape).toEqual([2, spec.numKvHeads, 16, spec.headDim]);
      expect(get("attn.pattern").shape).toEqual([2, spec.numHeads, 16, 16]);
      expect(get("attn.z").shape).toEqual([2, 16, spec.numHeads, spec.headDim]);
      const q = values(get("attn.q"));
      const k = values(get("attn.k"));
      const v = values(get("attn.v"));
      const kvHeads = spec.numKvHeads;
      const group = heads / kvHeads;
      const pattern: number[] = [];
      const z = new Array<number>(batch * pos * heads * dh).fill(0);
      for (let b = 0; b < batch; b++)
        for (let h = 0; h < heads; h++)
          for (let i = 0; i < pos; i++) {
            const kh = Math.floor(h / group);
            const scores: number[] = [];
            for (let j = 0; j <= i; j++) {
              let s = 0;
              for (let d = 0; d < dh; d++) s += q[((b * heads + h) * pos + i) * dh + d]! * k[((b * kvHeads + kh) * pos + j) * dh + d]!;
              s *= spec.attentionScale;
              if (spec.attnSoftcap !== null) s = Math.tanh(s / spec.attnSoftcap) * spec.attnSoftcap;
              scores.push(s);
            }
            const top = Math.max(...scores);
            const exps = scores.map((s) => Math.exp(s - top));
            const total = exps.reduce((a, e) => a + e, 0);
            for (let j = 0; j < pos; j++) pattern.push(j <= i ? exps[j]! / total : 0);
            for (let j = 0; j <= i; j++)
              for (let d = 0; d < dh; d++)
                z[((b * pos + i) * heads + h) * dh + d]! += (exps[j]! / total) * v[((b * kvHeads + kh) * pos + j) * dh + d]!;
          }
      expectClose(values(get("attn.pattern")), pattern, 1e-5);
      expectClose(values(get("attn.z")), z, 1e-5);
      // Scores are the pre-softmax logits: their softmax over the allowed keys is the pattern.
      const softmaxed = tidy(() => values(get("attn.scores").softmax(-1)));
      expectClose(softmaxed, pattern, 1e-5);
      const gate = values(get("mlp.gate"));
      const up = values(get("mlp.up"));
      const act = (x: number) =>
        spec.activation === "silu" ? x / (1 + Math.exp(-x)) : 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
      expectClose(
        values(get("mlp.hidden")),
        gate.map((g, i) => act(g) * up[i]!),
        1e-5,
      );
      const down = tidy(() => values(linear(get("mlp.hidden"), model.parameters.get("model.layers.1.mlp.down_proj.weight")!)));
      expectClose(values(get("down_proj")), down, 1e-5);
    } finally {
      cache.dispose();
    }
  });

  it("keeps the fused kernel without a pattern hook (logits bit-identical) and switches only when one is registered", () => {
    const logitsWith = (hooks: [HookPoint, HookFn][]) =>
      tidy(() => values(model.decoder.hooks.withHooks(hooks, () => model.decoder.forward(idTensorOf(IDS)).logits!)));
    const base = logitsWith([]);
    const observe: HookFn = () => {};
    expect(
      logitsWith(
        layerPoints.filter((p) => p !== "attn.scores" && p !== "attn.pattern").map((p) => [`blocks.0.${p}` as HookPoint, observe]),
      ),
    ).toEqual(base);
    expectClose(logitsWith([["blocks.0.attn.pattern", observe]]), base, 1e-5);
    // A replacing pattern hook reaches the output (so the explicit path really runs): uniform causal attention.
    const uniform: HookFn = (p) => p.gt(0).to(p.dtype).div(p.gt(0).to(p.dtype).sum(-1, true));
    const changed = logitsWith([["blocks.0.attn.pattern", uniform]]);
    expect(Math.max(...changed.map((c, i) => Math.abs(c - base[i]!)))).toBeGreaterThan(1e-4);
  });

  it("runWithCache gives gradients on a frozen model: closed form at final_norm, central differences at resid_pre", () => {
    const token = 7;
    const metric = ({ logits }: { logits: Tensor }) => logits.select(0, 0).select(0, 15).select(0, token);
    const cache = runWithCache(model.decoder, IDS, { points: ["blocks.1.resid_pre", "final_norm"], backward: metric });
    try {
      for (const p of model.parameters.values()) {
        expect(p.requiresGrad).toBe(false);
        expect(p.grad).toBeNull();
      }
      const gFinal = values(cache.grad("final_norm"));
      const d = model.spec.hiddenSize;
      const W = values(model.decoder.weights.lmHead);
      const cap = model.spec.finalSoftcap;
      const logit = values(cache.logits)[(0 * 16 + 15) * model.spec.vocabSize + token]!;
      const outer = cap === null ? 1 : 1 - (logit / cap) ** 2;
      const expected = new Array<number>(2 * 16 * d).fill(0);
      for (let j = 0; j < d; j++) expected[15 * d + j] = outer * W[token * d + j]!;
      expectClose(gFinal, expected, 1e-5);
      // <grad at every position, u> against (m(x + eps u) - m(x - eps u)) / 2 eps with u added at every position.
      const u = seededValues(d, 11);
      const gPre = values(cache.grad("blocks.1.resid_pre"));
      let predicted = 0;
      for (let i = 0; i < gPre.length; i++) predicted += gPre[i]! * u[i % d]!;
      const eps = 1e-3;
      const shifted = (sign: number) =>
        tidy(() => {
          const vector = tensor(Float32Array.from(u));
          return model.decoder.hooks.withHooks([["blocks.1.resid_pre", addHook(vector, sign * eps)]], () =>
            metric({ logits: model.decoder.forward(idTensorOf(IDS)).logits! }).toNumber(),
          );
        });
      const numeric = (shifted(1) - shifted(-1)) / (2 * eps);
      expect(Math.abs(numeric - predicted)).toBeLessThan(2e-2 * Math.max(1, Math.abs(predicted)));
      expect(Math.abs(predicted)).toBeGreaterThan(1e-3);
    } finally {
      cache.dispose();
    }
  });

  it("gradientHook fills .grad on a frozen model (no detach trick needed)", () => {
    const kept: Tensor[] = [];
    try {
      tidy(() =>
        enableGrad(() => {
          const logits = model.decoder.hooks.withHooks(
            [["final_norm", gradientHook(kept)]],
            () => model.decoder.forward(idTensorOf(IDS)).logits!,
          );
          logits.select(0, 0).select(0, 15).select(0, 7).backward();
        }),
      );
      const g = kept[0]!.grad!;
      const row = tidy(() => values(g.select(0, 0).select(0, 15)));
      g.dispose();
      const W = values(model.decoder.weights.lmHead);
      const d = model.spec.hiddenSize;
      if (model.spec.finalSoftcap === null) expectClose(row, W.slice(7 * d, 8 * d), 1e-5);
      else expect(row.some((x) => x !== 0)).toBe(true);
    } finally {
      for (const t of kept) t.dispose();
    }
  });

  it("accepts one row of ids and names the argument for wrong shapes", () => {
    const cache = runWithCache(model.decoder, IDS[0]!, { points: ["embed"] });
    try {
      expect(cache.get("embed").shape).toEqual([1, 16, model.spec.hiddenSize]);
      expect(() => cache.get("final_norm")).toThrow(/not in the cache/);
    } finally {
      cache.dispose();
    }
    expect(() => runWithCache(model.decoder, [[1, 2], [3]], { points: ["embed"] })).toThrow(IdShapeError);
    expect(() => runWithCache(model.decoder, [[1, 2], [3]], { points: ["embed"] })).toThrow(/^ids: row 1 has 1 ids/);
    expect(() => runWithCache(model.decoder, [1, 2], { points: ["blocks.9.resid_pre" as HookPoint] })).toThrow(/unknown hook point/);
  });
});

describe("activation patching on the tiny qwen2", () => {
  useLeakCheck();
  let model: LoadedModel;
  beforeAll(() => {
    model = loadModel(join(MODELS, "qwen2"));
  });
  afterAll(() => model?.dispose());

  it("patching the last layer's mlp_out at the last position equals lm_head(RMSNorm(corrupted resid_mid + clean mlp_out))", () => {
    const token = 42;
    const clean = IDS[0]!;
    const corrupted = IDS[1]!;
    const metric = (logits: Tensor) => logits.select(0, 0).select(0, 15).select(0, token).toNumber();
    const result = patchActivations(model.decoder, clean, corrupted, {
      points: ["blocks.1.mlp_out"],
      positions: [15],
      metric,
      eachPoint: true,
    });
    // Inputs of the hand computation, captured from plain runs.
    const grab = (ids: number[], point: HookPoint) => {
      const into: Tensor[] = [];
      const logits = tidy(() =>
        values(model.decoder.hooks.withHooks([[point, captureHook(into)]], () => model.decoder.forward(idTensorOf([ids])).logits!)),
      );
      const v = values(into[0]!);
      into[0]!.dispose();
      return { v, logits };
    };
    const d = model.spec.hiddenSize;
    const mid = grab(corrupted, "blocks.1.resid_mid");
    const mlp = grab(clean, "blocks.1.mlp_out");
    const h = Array.from({ length: d }, (_, j) => mid.v[15 * d + j]! + mlp.v[15 * d + j]!);
    const rms = Math.sqrt(h.reduce((s, x) => s + x * x, 0) / d + model.spec.rmsNormEps);
    const norm = values(model.parameters.get("model.norm.weight")!);
    const W = values(model.decoder.weights.lmHead);
    let expected = 0;
    for (let j = 0; j < d; j++) expected += W[token * d + j]! * norm[j]! * (h[j]! / rms);
    expect(Math.abs(result.patched - expected)).toBeLessThan(1e-4);
    expect(Math.abs(result.clean - mlp.logits[15 * model.spec.vocabSize + token]!)).toBeLessThan(1e-5);
    expect(Math.abs(result.corrupted - mid.logits[15 * model.spec.vocabSize + token]!)).toBeLessThan(1e-5);
    expect(result.byPoint.get("blocks.1.mlp_out")).toBeCloseTo(result.patched, 6);
    expect(Math.abs(result.patched - result.corrupted)).toBeGreaterThan(1e-4);
    // Patching the whole residual stream entering the last layer restores the clean run exactly.
    const full = patchActivations(model.decoder, clean, corrupted, { points: ["blocks.1.resid_pre"], metric });
    expect(Math.abs(full.patched - full.clean)).toBeLessThan(1e-5);
  });
});
