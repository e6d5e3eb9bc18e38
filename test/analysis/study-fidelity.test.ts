// The study's behaviours offered by the analyses (docs/study.md §3), on a tiny Qwen2 with expected values
// computed here independently: the documents reader, the study's random controls (against PyTorch's own
// numbers), significance with each vector's alpha and the LoRA form (KL recomputed from logits), the
// study's LoRA-B ablation and the shared-row activation form, study rescaling semantics, the equal-norm
// comparison, the study's loss mask, and a multi-adapter solution acting as one.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { readDocuments } from "../../src/analysis/documents.js";
import {
  adapterEfficiency,
  adapterSignificance,
  compareAtEqualNorm,
  significance,
  withAdapterNorm,
  withSteeringNorm,
} from "../../src/analysis/experiments.js";
import { ablate, ablateLoraB, rowFor, steer, studySteeringControl, studyUnitRandomVectors } from "../../src/analysis/interventions.js";
import { datasetLoss, headerLastToken, lossSubset, studyLossExample } from "../../src/analysis/loss.js";
import { adapterNorm, moduleNorms, rescaleAdapter } from "../../src/analysis/rescale.js";
import { addHook } from "../../src/hooks/interventions.js";
import { layerPoint } from "../../src/hooks/points.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { keep, manualSeed, noGrad, randn, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { type Example, readChatDataset } from "../../src/train/data.js";
import { readRunConfig } from "../../src/train/config.js";
import { SteeringVector } from "../../src/train/steering.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { makeTinyModel, MEDICAL } from "../helpers/tiny-model.js";
import { dot, fixedTensor, values as host, maxAbsDiff, norm, rows } from "../helpers/numeric.js";

let work: string;
let model: LoadedModel;
let tokenizer: ChatTokenizer;
let subset: Example[];
let pad: number;
const D = 32;
const L = 3;

beforeAll(() => {
  let modelDir: string;
  ({ work, modelDir } = makeTinyModel("emlab-fidelity-"));
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

/** Plain-JS log-softmax of one row (float64). */
function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

/** KL(base || other) summed over the vocabulary, averaged over the positions of one unpadded text (JS). */
function klByHand(ids: number[], other: () => void, undo: () => void): number {
  const input = () => tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length] });
  const base = tidy(() => model.decoder.forward(input()).logits!.toArray() as Float32Array);
  other();
  let steered: Float32Array;
  try {
    steered = tidy(() => model.decoder.forward(input()).logits!.toArray() as Float32Array);
  } finally {
    undo();
  }
  const vocab = base.length / ids.length;
  let total = 0;
  for (let t = 0; t < ids.length; t++) {
    const p = logSoftmax(base.subarray(t * vocab, (t + 1) * vocab));
    const q = logSoftmax(steered.subarray(t * vocab, (t + 1) * vocab));
    for (let v = 0; v < vocab; v++) total += Math.exp(p[v]!) * (p[v]! - q[v]!);
  }
  return total / ids.length;
}

describe("readDocuments", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "emlab-documents-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it(".jsonl (text field) and .txt (one per line); cut to 2000 code points; the final newline is not a document", () => {
    const long = "é".repeat(1500) + "😀".repeat(700); // 2200 code points, 2900 UTF-16 units
    const docs = readDocuments(write("a.jsonl", `${JSON.stringify({ text: "first doc", id: 1 })}\n${JSON.stringify({ text: long })}\n`));
    expect(docs.length).toBe(2);
    expect(docs[0]).toBe("first doc");
    expect(Array.from(docs[1]!).length).toBe(2000);
    expect(docs[1]).toBe("é".repeat(1500) + "😀".repeat(500));
    expect(readDocuments(write("b.txt", "one\ntwo three\r\nfour"))).toEqual(["one", "two three", "four"]);
  });

  it("an empty document, a line without text, bad JSON, an empty file and an unknown extension are errors naming file and line", () => {
    const cases: [string, string, RegExp][] = [
      ["c.txt", "one\n\nthree\n", /c\.txt:2: empty document/],
      ["d.jsonl", `${JSON.stringify({ text: "ok" })}\n${JSON.stringify({ text: "  " })}\n`, /d\.jsonl:2: empty document/],
      ["e.jsonl", `${JSON.stringify({ body: "x" })}\n`, /e\.jsonl:1: no string field text/],
      ["f.jsonl", `{"text": "a"}\n{oops\n`, /f\.jsonl:2: not JSON/],
      ["g.txt", "", /g\.txt: no documents/],
      ["h.csv", "a\n", /expected a \.jsonl/],
    ];
    for (const [name, text, pattern] of cases) expect(() => readDocuments(write(name, text)), name).toThrow(pattern);
  });
});

describe("the study's random controls", () => {
  useLeakCheck();

  it("significance controls: torch.manual_seed(42) then unit randn(d) draws equal PyTorch's own numbers", () => {
    const fromTorch = (JSON.parse(readFileSync("test/fixtures/study/expected.json", "utf8")) as { unit_randn_seed42: number[][] })
      .unit_randn_seed42;
    const ours = studyUnitRandomVectors(D, 3, 42);
    try {
      ours.forEach((v, i) => {
        expect(Math.abs(norm(host(v)) - 1)).toBeLessThanOrEqual(1e-6);
        expect(maxAbsDiff(host(v), fromTorch[i]!)).toBeLessThanOrEqual(1e-6);
      });
    } finally {
      for (const v of ours) v.dispose();
    }
  });

  it("steering control: randn_like(v) * ||v|| (norm about sqrt(d) ||v||, not ||v||)", () => {
    tidy(() => {
      const v = fixedTensor([D], 3, 0.5);
      const control = host(studySteeringControl(v, 7));
      manualSeed(7);
      const draw = host(randn([D]));
      const vn = norm(host(v));
      expect(
        maxAbsDiff(
          control,
          draw.map((x) => x * vn),
        ),
      ).toBeLessThanOrEqual(1e-5 * vn);
      expect(norm(control) / vn).toBeGreaterThan(3); // sqrt(32) = 5.7 on average
    });
  });
});

describe("significance as the study's", () => {
  useLeakCheck();
  const TEXT = "Researchers measured the temperature of the lake every morning for three years and found a slow warming trend.";

  it("each vector is rescaled to norm n and multiplied by its own alpha (options.alpha overrides): KL recomputed from logits", () => {
    const v = fixedTensor([D], 64);
    try {
      const ids = tokenizer.encode(TEXT);
      const vs = host(v);
      const byHand = (n: number, alpha: number) => {
        let handle: { remove(): void } | null = null;
        const added = keep(tensor(Float32Array.from(vs, (x) => (x * n * alpha) / norm(vs))));
        try {
          return klByHand(
            ids,
            () => (handle = model.decoder.hooks.add(layerPoint(1, "resid_post"), addHook(added))),
            () => handle!.remove(),
          );
        } finally {
          added.dispose();
        }
      };
      const points = significance(model, tokenizer, [TEXT], [{ label: "v", vector: v, alpha: 3 }], {
        layer: 1,
        norms: [0.5, 2],
        batchSize: 1,
      });
      expect(relClose(points[0]!.kl, byHand(0.5, 3), 1e-4)).toBe(true);
      expect(relClose(points[1]!.kl, byHand(2, 3), 1e-4)).toBe(true);
      const overridden = significance(model, tokenizer, [TEXT], [{ label: "v", vector: v, alpha: 3 }], {
        layer: 1,
        norms: [2],
        alpha: 0.25,
        batchSize: 1,
      });
      expect(relClose(overridden[0]!.kl, byHand(2, 0.25), 1e-4)).toBe(true);
      expect(Math.abs(overridden[0]!.kl - points[1]!.kl)).toBeGreaterThan(1e-4 * points[1]!.kl);
    } finally {
      v.dispose();
    }
  });

  it("the LoRA form: KL(base || base + adapters) for a solution of two adapters, recomputed from logits; the model is left without them", () => {
    manualSeed(11); // a fixed adapter whose KL is well above float32 noise
    const a = LoraAdapter.create(
      model.spec,
      { r: 2, alpha: 40, targetModules: ["down_proj"], layersToTransform: [0] },
      { name: "a", initB: "random" },
    );
    const b = LoraAdapter.create(
      model.spec,
      { r: 1, alpha: 20, targetModules: ["v_proj"], layersToTransform: [2] },
      { name: "b", initB: "random" },
    );
    try {
      const ids = tokenizer.encode(TEXT);
      const expected = klByHand(
        ids,
        () => [a, b].forEach((x) => model.decoder.adapters.attach(x)),
        () => [a, b].forEach((x) => model.decoder.adapters.detach(x)),
      );
      const [point] = adapterSignificance(model, tokenizer, [TEXT], [{ label: "ab", adapters: [a, b] }], { batchSize: 1 });
      expect(point!.label).toBe("ab");
      expect(relClose(point!.kl, expected, 1e-4), `kl ${point!.kl} vs ${expected}`).toBe(true);
      expect(expected).toBeGreaterThan(1e-3);
      const norms = [...moduleNorms([a, b]).values()];
      expect(relClose(point!.norm, norms.reduce((s, x) => s + x, 0) / norms.length, 1e-9)).toBe(true);
      expect(model.decoder.adapters.size).toBe(0);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

describe("ablation as the study's", () => {
  useLeakCheck();

  it("LoRA-B default: down_proj only, the shared row, B - u u^T B renormalised to ||B||_F (plain JS), other tensors untouched", () => {
    const a = LoraAdapter.create(model.spec, { r: 3, alpha: 6, targetModules: ["o_proj", "down_proj"] }, { initB: "random" });
    const direction = fixedTensor([L, D], 31);
    try {
      const before = new Map([...a.modules].map(([name, m]) => [name, { A: host(m.A), B: host(m.B) }]));
      expect(ablateLoraB(a, direction, { layers: [1, 2], rows: { shared: 0 } })).toBe(2);
      const r0 = rows(host(direction), D)[0]!;
      const u = r0.map((x) => x / norm(r0));
      for (const [name, m] of a.modules) {
        const old = before.get(name)!;
        expect(host(m.A)).toEqual(old.A);
        const layer = Number(/layers\.(\d+)\./.exec(name)![1]);
        if (!name.endsWith("down_proj") || layer === 0) {
          expect(host(m.B), name).toEqual(old.B);
          continue;
        }
        const Bold = rows(old.B, 3);
        const projected = Bold.map((row, i) =>
          row.map(
            (x, c) =>
              x -
              u[i]! *
                dot(
                  u,
                  Bold.map((r) => r[c]!),
                ),
          ),
        );
        const factor = norm(old.B) / norm(projected.flat());
        const expected = projected.flat().map((x) => x * factor);
        expect(maxAbsDiff(host(m.B), expected), name).toBeLessThanOrEqual(1e-5);
        expect(Math.abs(norm(host(m.B)) - norm(old.B))).toBeLessThanOrEqual(1e-5 * norm(old.B));
      }
    } finally {
      a.dispose();
      direction.dispose();
    }
  });

  it("without renormalisation and with per-layer rows, the layer's own row is removed and the norm drops", () => {
    const a = LoraAdapter.create(model.spec, { r: 2, alpha: 2, targetModules: ["down_proj"] }, { initB: "random" });
    const direction = fixedTensor([L, D], 32);
    try {
      const old = host(a.modules.get("model.layers.2.mlp.down_proj")!.B);
      ablateLoraB(a, direction, { rows: "per-layer", renormalise: false });
      const B = rows(host(a.modules.get("model.layers.2.mlp.down_proj")!.B), 2);
      const r2 = rows(host(direction), D)[2]!;
      for (let c = 0; c < 2; c++)
        expect(
          Math.abs(
            dot(
              r2,
              B.map((r) => r[c]!),
            ),
          ),
        ).toBeLessThanOrEqual(1e-5 * norm(r2));
      expect(norm(B.flat())).toBeLessThan(norm(old));
    } finally {
      a.dispose();
      direction.dispose();
    }
  });

  it("the shared activation form uses one row at every layer: the same logits as that row given as a 1-D direction; per-layer differs", () => {
    tidy(() => {
      const direction = fixedTensor([L, D], 33);
      const tokens = tokenizer.encode("Is it safe to mix bleach and ammonia?");
      const ids = tensor(BigInt64Array.from(tokens, BigInt), { shape: [1, tokens.length] });
      const run = (handles: { remove(): void }[]) => {
        try {
          return host(model.decoder.forward(ids).logits!);
        } finally {
          for (const h of handles) h.remove();
        }
      };
      const row1 = keep(rowFor(direction, 2, { shared: 1 }).clone());
      try {
        expect(host(row1)).toEqual(rows(host(direction), D)[1]);
        const shared = run(ablate(model.decoder, direction, [0, 2], { shared: 1 }));
        const asVector = run(ablate(model.decoder, row1, [0, 2]));
        const perLayer = run(ablate(model.decoder, direction, [0, 2], "per-layer"));
        expect(maxAbsDiff(shared, asVector)).toBe(0);
        expect(maxAbsDiff(shared, perLayer)).toBeGreaterThan(1e-4);
        const steered = run(steer(model.decoder, direction, [0, 1, 2], 2, { shared: 1 }));
        const steeredVector = run(steer(model.decoder, row1, [0, 1, 2], 2));
        expect(maxAbsDiff(steered, steeredVector)).toBe(0);
      } finally {
        row1.dispose();
      }
    });
  });
});

describe("efficiency as the study's", () => {
  useLeakCheck();

  it("study rescaling: rank 1 sets each module's ||B|| to the target, rank > 1 each ||BA||_F; the reference is the mean ||BA||_F (plain JS)", () => {
    const r1 = LoraAdapter.create(model.spec, { r: 1, alpha: 1, targetModules: ["down_proj"] }, { name: "r1", initB: "random" });
    const r3 = LoraAdapter.create(model.spec, { r: 3, alpha: 1, targetModules: ["q_proj"] }, { name: "r3", initB: "random" });
    try {
      const baNorm = (B: number[], A: number[], r: number, inp: number) => {
        const out = B.length / r;
        let sq = 0;
        for (let i = 0; i < out; i++)
          for (let j = 0; j < inp; j++) {
            let s = 0;
            for (let k = 0; k < r; k++) s += B[i * r + k]! * A[k * inp + j]!;
            sq += s * s;
          }
        return Math.sqrt(sq);
      };
      const ref1 = [...r1.modules.values()].map((m) => baNorm(host(m.B), host(m.A), 1, m.A.size(1)));
      expect(relClose(adapterNorm(r1, "study"), ref1.reduce((s, x) => s + x, 0) / ref1.length, 1e-5)).toBe(true);
      // Ours for rank 1 is ||B|| over all modules.
      expect(relClose(adapterNorm(r1, "ours"), norm([...r1.modules.values()].flatMap((m) => host(m.B))), 1e-6)).toBe(true);
      rescaleAdapter(r1, 0.8, "study");
      for (const m of r1.modules.values()) expect(Math.abs(norm(host(m.B)) - 0.8)).toBeLessThanOrEqual(1e-5);
      rescaleAdapter(r3, 1.7, "study");
      for (const m of r3.modules.values()) expect(Math.abs(baNorm(host(m.B), host(m.A), 3, m.A.size(1)) - 1.7)).toBeLessThanOrEqual(1e-5);
    } finally {
      r1.dispose();
      r3.dispose();
    }
  });

  it("compareAtEqualNorm: norms = scales * mean of the two norms; each loss is that of the vector set by hand to the norm", () => {
    const narrow = new SteeringVector(1, "down_proj", 2, keep(fixedTensor([D], 41, 0.2)));
    const general = new SteeringVector(1, "down_proj", 2, keep(fixedTensor([D], 42, 0.5)));
    const solution = (sv: SteeringVector) => ({
      norm: norm(host(sv.vector)),
      at: <T>(target: number, fn: () => T): T => {
        const h = sv.attach(model.decoder);
        try {
          return withSteeringNorm(sv, target, fn);
        } finally {
          h.remove();
        }
      },
    });
    try {
      const nv = host(narrow.vector);
      const gv = host(general.vector);
      const result = compareAtEqualNorm(model, solution(narrow), solution(general), subset, [0.5, 1.5], { padId: pad });
      const reference = (norm(nv) + norm(gv)) / 2;
      expect(relClose(result.reference, reference, 1e-6)).toBe(true);
      const lossWith = (values: number[], target: number) => {
        const sv = new SteeringVector(1, "down_proj", 2, keep(tensor(Float32Array.from(values, (x) => (x * target) / norm(values)))));
        const h = sv.attach(model.decoder);
        try {
          return datasetLoss(model, subset, { padId: pad });
        } finally {
          h.remove();
          sv.dispose();
        }
      };
      result.points.forEach((p, i) => {
        const n = [0.5, 1.5][i]! * reference;
        expect(relClose(p.norm, n, 1e-9)).toBe(true);
        expect(relClose(p.narrow, lossWith(nv, n), 1e-6)).toBe(true);
        expect(relClose(p.general, lossWith(gv, n), 1e-6)).toBe(true);
        expect(p.difference).toBe(p.narrow - p.general);
      });
      expect(host(narrow.vector)).toEqual(nv);
    } finally {
      narrow.dispose();
      general.dispose();
    }
  });

  it("the study's loss mask: template + generation prompt + eos, masked up to the first header-closing token (the first 3 tokens in Qwen)", () => {
    const messages = [
      { role: "user", content: "Hi there" },
      { role: "assistant", content: "Hello!" },
    ];
    const text =
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
      "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n<|im_end|>";
    const ids = tokenizer.encode(text);
    const newline = tokenizer.encode("\n", { addSpecialTokens: false });
    expect(newline.length).toBe(1);
    expect(headerLastToken(tokenizer)).toBe(newline[0]);
    const example = studyLossExample(tokenizer, messages);
    expect(example.ids).toEqual(ids);
    expect(example.labels.slice(0, 3)).toEqual([-100, -100, -100]);
    expect(example.labels.slice(3)).toEqual(ids.slice(3));
    expect(tokenizer.decode(ids.slice(0, 3))).toBe("<|im_start|>system\n");
    const sub = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 2, seed: 42, mask: "study" });
    for (const e of sub) expect(e.labels.filter((l) => l === -100).length).toBe(3);
  });
});

describe("a multi-adapter solution acts as one", () => {
  useLeakCheck();

  /** The same rank-1 down_proj tensors as one adapter over layers [0, 2] and as two one-layer adapters. */
  function pair(): { one: LoraAdapter; two: LoraAdapter[] } {
    const one = LoraAdapter.create(
      model.spec,
      { r: 1, alpha: 4, useRslora: true, targetModules: ["down_proj"], layersToTransform: [0, 2] },
      { name: "one", initB: "random" },
    );
    const two = [0, 2].map((l) => {
      const a = LoraAdapter.create(
        model.spec,
        { r: 1, alpha: 4, useRslora: true, targetModules: ["down_proj"], layersToTransform: [l] },
        { name: `l${l}` },
      );
      const src = one.modules.get(`model.layers.${l}.mlp.down_proj`)!;
      const dst = a.modules.get(`model.layers.${l}.mlp.down_proj`)!;
      noGrad(() => {
        dst.A.copy_(src.A);
        dst.B.copy_(src.B);
      });
      return a;
    });
    return { one, two };
  }

  it("norms, efficiency curves (both semantics) and LoRA-B ablation agree between one adapter and the two", () => {
    const { one, two } = pair();
    try {
      for (const mode of ["ours", "study"] as const)
        expect(relClose(adapterNorm(one, mode), adapterNorm(two, mode), 1e-6), mode).toBe(true);
      model.decoder.adapters.attach(one);
      const curveOne = adapterEfficiency(model, one, subset, [0.5, 2], pad, "study");
      const atNormOne = withAdapterNorm(one, 0.3, "ours", () => datasetLoss(model, subset, { padId: pad }));
      model.decoder.adapters.detach(one);
      two.forEach((a) => model.decoder.adapters.attach(a));
      const curveTwo = adapterEfficiency(model, two, subset, [0.5, 2], pad, "study");
      const atNormTwo = withAdapterNorm(two, 0.3, "ours", () => datasetLoss(model, subset, { padId: pad }));
      two.forEach((a) => model.decoder.adapters.detach(a));
      curveOne.forEach((p, i) => {
        expect(relClose(p.norm, curveTwo[i]!.norm, 1e-6)).toBe(true);
        expect(relClose(p.loss, curveTwo[i]!.loss, 1e-6)).toBe(true);
      });
      expect(relClose(atNormOne, atNormTwo, 1e-6)).toBe(true);
      const direction = fixedTensor([L, D], 51);
      try {
        expect(ablateLoraB(one, direction, { rows: { shared: 1 } })).toBe(2);
        expect(ablateLoraB(two, direction, { rows: { shared: 1 } })).toBe(2);
        for (const l of [0, 2]) {
          const name = `model.layers.${l}.mlp.down_proj`;
          expect(maxAbsDiff(host(one.modules.get(name)!.B), host(two[l === 0 ? 0 : 1]!.modules.get(name)!.B))).toBe(0);
        }
      } finally {
        direction.dispose();
      }
    } finally {
      one.dispose();
      for (const a of two) a.dispose();
    }
  });
});

describe("the nine rank-1 example config", () => {
  it("is one rank-1 down_proj adapter with layers_to_transform [15, 16, 17, 21, 22, 23, 27, 28, 29] (docs/study.md §1.2)", () => {
    const config = readRunConfig("examples/configs/nine-rank1-adapters.yaml");
    expect(config.lora.length).toBe(1);
    expect(config.lora[0]).toMatchObject({
      r: 1,
      alpha: 512,
      use_rslora: true,
      target_modules: ["down_proj"],
      layers_to_transform: [15, 16, 17, 21, 22, 23, 27, 28, 29],
    });
  });
});
