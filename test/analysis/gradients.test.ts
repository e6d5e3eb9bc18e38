// Gradient analyses: lossGradient against central finite differences of datasetLoss (steering vector and
// a LoRA B entry, f64 weights), gradientNorms grouping, cosine, PCA on synthetic points with a known
// answer, and checkpointTrajectory on hand-written checkpoint dirs and on a real 4-step steering run.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { checkpointTrajectory, cosine, gradientNorms, lossGradient, pca } from "../../src/analysis/gradients.js";
import { datasetLoss, lossSubset } from "../../src/analysis/loss.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { runTraining } from "../../src/recipes/train.js";
import { keep, noGrad, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { resolveRunConfig } from "../../src/train/config.js";
import { type Example, readChatDataset } from "../../src/train/data.js";
import { SteeringVector } from "../../src/train/steering.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { seededValues, cos, dot, fixedTensor, values as host, maxAbs, norm } from "../helpers/numeric.js";
import { makeTinyModel, MEDICAL } from "../helpers/tiny-model.js";

let work: string;
let modelDir: string;
let model: LoadedModel;
let tokenizer: ChatTokenizer;
let subset: Example[];
let pad: number;
const D = 32;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-gradients-"));
  model = loadModel(modelDir, { dtype: "f64" });
  tokenizer = ChatTokenizer.fromDir(modelDir);
  subset = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 3, maxLength: 96, seed: 1 });
  pad = tokenizer.padTokenId!;
});
afterAll(() => {
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

/** Sets entry `index` of `t` (flat) to `value` in place. */
function setEntry(t: Tensor, index: number, value: number): void {
  noGrad(() =>
    tidy(() => {
      const flat = Float32Array.from(host(t));
      flat[index] = value;
      t.copy_(tensor(flat, { shape: t.shape }));
    }),
  );
}

describe("lossGradient", () => {
  useLeakCheck();
  const options = { batchSize: 2, padId: 0 }; // batches of 2 and 1: the gradient is of the mean of batch means
  const loss = () => datasetLoss(model, subset, options);

  it("w.r.t. a steering vector matches central finite differences of datasetLoss; no gradient is left on the parameter", () => {
    const sv = new SteeringVector(1, "down_proj", 1, keep(fixedTensor([D], 71, 0.1).requiresGrad_()));
    const unused = keep(fixedTensor([3], 72).requiresGrad_());
    const handle = sv.attach(model.decoder);
    // The loss is a float32 number (ulp ~1e-6 near 12): the fourth-order central difference with a step
    // of 2e-2 keeps both the rounding (~1e-4 of the step) and the truncation error well under the tolerance.
    const h = 2e-2;
    try {
      const [grad, none] = lossGradient(model, [sv.vector, unused], subset, options);
      try {
        expect(sv.vector.grad).toBeNull();
        expect(unused.grad).toBeNull();
        expect(host(none!).every((x) => x === 0)).toBe(true);
        expect(none!.shape).toEqual([3]);
        const g = host(grad!);
        const scale = maxAbs(g);
        expect(scale).toBeGreaterThan(1e-4);
        const v = host(sv.vector);
        /** d/dt loss(v + t * u) at t = 0, by (8 (L(h) - L(-h)) - (L(2h) - L(-2h))) / 12h. */
        const derivative = (u: readonly number[]): number => {
          const at = (t: number) => {
            noGrad(() => tidy(() => void sv.vector.copy_(tensor(Float32Array.from(v, (x, j) => x + t * u[j]!)))));
            return loss();
          };
          const d = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
          noGrad(() => tidy(() => void sv.vector.copy_(tensor(Float32Array.from(v)))));
          return d;
        };
        // The three largest entries and the smallest one.
        const order = g.map((x, i) => [Math.abs(x), i] as const).sort((a, b) => b[0] - a[0]);
        for (const [, i] of [...order.slice(0, 3), order[order.length - 1]!]) {
          const fd = derivative(g.map((_, j) => (j === i ? 1 : 0)));
          expect(Math.abs(fd - g[i]!), `entry ${i}: fd ${fd} vs ${g[i]}`).toBeLessThanOrEqual(2e-3 * scale);
        }
        // A directional derivative along a fixed unit vector.
        const u = seededValues(D, 73).map((x, _, a) => x / norm(a));
        expect(Math.abs(derivative(u) - dot(g, u))).toBeLessThanOrEqual(2e-3 * scale);
        expect(host(sv.vector)).toEqual(v);
      } finally {
        grad!.dispose();
        none!.dispose();
      }
    } finally {
      handle.remove();
      sv.dispose();
      unused.dispose();
    }
  });

  it("w.r.t. a LoRA B matrix matches a central finite difference", () => {
    // A large LoRA scale (alpha / r = 32) so the gradient stands well above the float32 loss's rounding.
    const adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 64, targetModules: ["down_proj"] }, { initB: "random" });
    model.decoder.adapters.attach(adapter);
    try {
      const B = adapter.modules.get("model.layers.1.mlp.down_proj")!.B;
      const [grad] = lossGradient(model, [B], subset, options);
      try {
        const g = host(grad!);
        expect(grad!.shape).toEqual(B.shape);
        const scale = maxAbs(g);
        const i = g.findIndex((x) => Math.abs(x) === scale);
        const b = host(B);
        const h = 1e-2;
        setEntry(B, i, b[i]! + h);
        const up = loss();
        setEntry(B, i, b[i]! - h);
        const down = loss();
        setEntry(B, i, b[i]!);
        expect(Math.abs((up - down) / (2 * h) - g[i]!)).toBeLessThanOrEqual(2e-3 * scale);
        expect(B.grad).toBeNull();
      } finally {
        grad!.dispose();
      }
    } finally {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }
  });
});

describe("gradientNorms and cosine", () => {
  useLeakCheck();

  it("groups squared norms by layer and module kind; total is the root of the sum of squares", () => {
    tidy(() => {
      const named = new Map<string, Tensor>([
        ["model.layers.0.self_attn.q_proj.lora_A", fixedTensor([2, 5], 81)],
        ["model.layers.0.mlp.down_proj.lora_B", fixedTensor([5, 2], 82).to("f64")],
        ["model.layers.2.self_attn.q_proj.lora_B", fixedTensor([4, 2], 83)],
        ["model.layers.2.self_attn.o_proj.lora_B", fixedTensor([4, 2], 84)],
        ["steering", fixedTensor([D], 85)],
      ]);
      const sq = new Map([...named].map(([k, t]) => [k, norm(host(t)) ** 2]));
      const get = (k: string) => sq.get(k)!;
      const r = gradientNorms(named);
      const expectRecord = (actual: Record<string, number>, expected: Record<string, number>) => {
        expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
        for (const [k, v] of Object.entries(expected)) expect(Math.abs(actual[k]! - v), k).toBeLessThanOrEqual(1e-6 * v);
      };
      expectRecord(r.byLayer, {
        "0": Math.sqrt(get("model.layers.0.self_attn.q_proj.lora_A") + get("model.layers.0.mlp.down_proj.lora_B")),
        "2": Math.sqrt(get("model.layers.2.self_attn.q_proj.lora_B") + get("model.layers.2.self_attn.o_proj.lora_B")),
        other: Math.sqrt(get("steering")),
      });
      expectRecord(r.byModule, {
        q_proj: Math.sqrt(get("model.layers.0.self_attn.q_proj.lora_A") + get("model.layers.2.self_attn.q_proj.lora_B")),
        down_proj: Math.sqrt(get("model.layers.0.mlp.down_proj.lora_B")),
        o_proj: Math.sqrt(get("model.layers.2.self_attn.o_proj.lora_B")),
        steering: Math.sqrt(get("steering")),
      });
      const total = Math.sqrt([...sq.values()].reduce((a, b) => a + b, 0));
      expect(Math.abs(r.total - total)).toBeLessThanOrEqual(1e-6 * total);
    });
  });

  it("cosine flattens and matches JS for mixed dtypes and shapes", () => {
    tidy(() => {
      const a = fixedTensor([2, 3], 86);
      const b = fixedTensor([6], 87).to("f64");
      expect(Math.abs(cosine(a, b) - cos(host(a), host(b)))).toBeLessThanOrEqual(1e-12);
      expect(cosine(a, a.mul(-2))).toBeCloseTo(-1, 12);
      expect(cosine(tensor([1, 0, 0]), tensor([0, 3, 0]))).toBe(0);
    });
  });
});

describe("pca", () => {
  useLeakCheck();

  /** Rows offset + sum_k coefficients[k][i] * basis[k] (basis orthonormal, coefficient vectors zero-mean and orthogonal). */
  function points(coefficients: number[][], basis: number[][], offset: number[]): Tensor {
    const n = coefficients[0]!.length;
    const flat = Array.from({ length: n }, (_, i) =>
      offset.map((o, j) => o + coefficients.reduce((s, c, k) => s + c[i]! * basis[k]![j]!, 0)),
    ).flat();
    return tensor(Float64Array.from(flat), { shape: [n, offset.length] });
  }

  it("recovers exactly known explained-variance ratios and scores", () => {
    const s2 = Math.SQRT1_2;
    const s3 = 1 / Math.sqrt(3);
    const basis = [
      [s2, s2, 0, 0, 0],
      [s2, -s2, 0, 0, 0],
      [0, 0, s3, s3, s3],
    ];
    const a = [6, 6, -6, -6];
    const b = [1, -1, 1, -1];
    const c = [0.3, -0.3, -0.3, 0.3];
    tidy(() => {
      const r = pca(points([a, b, c], basis, [1, 2, 3, 4, 5]), 3);
      const total = norm(a) ** 2 + norm(b) ** 2 + norm(c) ** 2;
      const expected = [a, b, c].map((v) => norm(v) ** 2 / total);
      expect(r.explained.length).toBe(3);
      r.explained.forEach((e, k) => expect(Math.abs(e - expected[k]!), `component ${k}`).toBeLessThanOrEqual(1e-9));
      [a, b, c].forEach((v, k) => {
        const p = r.projections[k]!;
        const sign = Math.sign(dot(p, v));
        expect(Math.max(...p.map((x, i) => Math.abs(x - sign * v[i]!))), `scores ${k}`).toBeLessThanOrEqual(1e-6);
      });
      // Asking for more components than points gives at most n.
      expect(pca(points([a, b, c], basis, [0, 0, 0, 0, 0]), 9).explained.length).toBe(4);
    });
  });

  it("on points spread along one axis plus small noise, explained[0] is the variance share along that axis; the ratios sum to <= 1", () => {
    const n = 10;
    const dim = 6;
    const axis = seededValues(dim, 91).map((x, _, v) => x / norm(v));
    const noise = seededValues(n * dim, 92, -0.02, 0.02);
    const flat = Array.from({ length: n }, (_, i) => axis.map((w, j) => (i - 4.5) * w + noise[i * dim + j]!)).flat();
    const rowsOf = Array.from({ length: n }, (_, i) => flat.slice(i * dim, (i + 1) * dim));
    const mean = axis.map((_, j) => rowsOf.reduce((s, r) => s + r[j]!, 0) / n);
    const centred = rowsOf.map((r) => r.map((x, j) => x - mean[j]!));
    const total = centred.reduce((s, r) => s + dot(r, r), 0);
    const along = centred.reduce((s, r) => s + dot(r, axis) ** 2, 0);
    tidy(() => {
      const r = pca(tensor(Float64Array.from(flat), { shape: [n, dim] }), 3);
      expect(r.explained[0]!).toBeGreaterThan(0.99);
      expect(Math.abs(r.explained[0]! - along / total)).toBeLessThanOrEqual(1e-4);
      expect(r.explained[0]!).toBeGreaterThanOrEqual(along / total - 1e-12); // the best direction explains at least as much
      expect(r.explained.reduce((s, e) => s + e, 0)).toBeLessThanOrEqual(1 + 1e-12);
      expect(r.explained[1]!).toBeLessThanOrEqual(r.explained[0]!);
      expect(r.explained[2]!).toBeLessThanOrEqual(r.explained[1]! + 1e-12);
      for (const p of r.projections) expect(p.length).toBe(n);
    });
  });
});

describe("checkpointTrajectory", () => {
  useLeakCheck();

  it("reads step-N checkpoint dirs in step order, concatenating each one's tensors in name order", () => {
    const run = join(work, "hand-run");
    const steps = [2, 4, 10];
    const values = steps.map((s) => ({ vector: seededValues(4, s), extra: seededValues(4, 100 + s) }));
    tidy(() => {
      steps.forEach((s, k) => {
        const dir = join(run, "checkpoints", `step-${String(s).padStart(6, "0")}`);
        mkdirSync(dir, { recursive: true });
        saveSafetensors(join(dir, "trainable.safetensors"), {
          "steering.vector": tensor(Float32Array.from(values[k]!.vector)),
          "a.extra": tensor(Float32Array.from(values[k]!.extra), { shape: [2, 2] }),
        });
      });
    });
    mkdirSync(join(run, "checkpoints", "step-000006.tmp-123"), { recursive: true }); // an interrupted write: ignored
    writeFileSync(join(run, "checkpoints", "notes.txt"), "not a checkpoint\n");
    const r = checkpointTrajectory(run);
    try {
      expect(r.steps).toEqual(steps);
      expect(r.points.shape).toEqual([3, 8]);
      expect(r.points.dtype).toBe("f64");
      const expected = values.flatMap((v) => [...v.extra, ...v.vector].map((x) => Math.fround(x)));
      expect(host(r.points)).toEqual(expected);
    } finally {
      r.points.dispose();
    }
    mkdirSync(join(work, "empty-run", "checkpoints"), { recursive: true });
    expect(() => checkpointTrajectory(join(work, "empty-run"))).toThrow(RangeError);
  });

  it("follows a real steering run (max_steps 4, save_steps 2): steps 2 and 4, the last point is the saved vector", () => {
    const out = join(work, "sv-run");
    const cfg = resolveRunConfig(
      {
        model: modelDir,
        output_dir: out,
        method: "steering",
        steering: { layer: 1, site: "down_proj", alpha: 1 },
        data: { train: MEDICAL, max_length: 128 },
        training: { max_steps: 4, batch_size: 2, gradient_accumulation: 1, lr: 1e-2, warmup_steps: 0, save_steps: 2 },
      },
      "sv.yaml",
    );
    runTraining(cfg);
    const r = checkpointTrajectory(out);
    const { tensors } = loadSafetensors(join(out, "steering_vector.safetensors"));
    try {
      expect(r.steps).toEqual([2, 4]);
      expect(r.points.shape).toEqual([2, D]);
      const finalVector = host(tensors.get("vector")!);
      const rowsOfPoints = [0, 1].map((i) => host(r.points).slice(i * D, (i + 1) * D));
      expect(rowsOfPoints[1]).toEqual(finalVector);
      expect(norm(rowsOfPoints[0]!)).toBeGreaterThan(0);
      expect(Math.max(...rowsOfPoints[0]!.map((x, j) => Math.abs(x - rowsOfPoints[1]![j]!)))).toBeGreaterThan(0);
    } finally {
      r.points.dispose();
      for (const t of tensors.values()) t.dispose();
    }
  });
});
