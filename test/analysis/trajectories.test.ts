// Trajectory and gradient analyses for every method: per-checkpoint norms and local cosines from hand-made
// checkpoints (expected values in plain JS), PCA fitted on two runs at once (known structure), the saved
// gradients being the pre-clipping ones (their norm equals the norm the recipe logs before clipping, while
// max_grad_norm is tiny), and `emlab gradients` on a LoRA and a steering run (CSV columns; the LoRA loss
// gradient equals one computed here with plain autograd on the loaded PEFT adapter).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../src/adapters/peft.js";
import { lossSubset } from "../../src/analysis/loss.js";
import { disposeTrajectory, jointPca, readRunTrajectory, trajectoryRows } from "../../src/analysis/trajectories.js";
import { parseCsv } from "../../src/eval/csv.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { causalLmLoss } from "../../src/nn/losses.js";
import { runTraining } from "../../src/recipes/train.js";
import { enableGrad, tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { resolveRunConfig } from "../../src/train/config.js";
import { collate, readChatDataset } from "../../src/train/data.js";
import { seededValues, cos, dot, norm } from "../helpers/numeric.js";
import { makeTinyModel, MEDICAL } from "../helpers/tiny-model.js";

let work: string;
let modelDir: string;
beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-trajectories-"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A run directory with hand-made checkpoints: trainables (two tensors) and, where given, gradients. */
function handRun(name: string, steps: number[], points: number[][], gradients: (number[] | null)[]): string {
  const run = join(work, name);
  steps.forEach((s, k) => {
    const dir = join(run, "checkpoints", `step-${String(s).padStart(6, "0")}`);
    mkdirSync(dir, { recursive: true });
    const split = (v: number[]) => ({
      "b.second": tensor(Float32Array.from(v.slice(2)), { shape: [2, 2] }),
      "a.first": tensor(Float32Array.from(v.slice(0, 2))),
    });
    tidy(() => {
      saveSafetensors(join(dir, "trainable.safetensors"), split(points[k]!));
      if (gradients[k]) saveSafetensors(join(dir, "gradients.safetensors"), split(gradients[k]!));
    });
  });
  return run;
}

const f32 = (v: number[]) => v.map((x) => Math.fround(x));
const sub = (a: number[], b: number[]) => a.map((x, i) => x - b[i]!);

describe("trajectoryRows", () => {
  it("param norm, update norm, cosine of consecutive updates, gradient norm and cosine of consecutive gradients", () => {
    const points = [0, 1, 2, 3].map((k) => f32(seededValues(6, 10 + k)));
    const grads = [f32(seededValues(6, 20)), null, f32(seededValues(6, 22)), f32(seededValues(6, 23))];
    const t = readRunTrajectory(handRun("hand", [2, 4, 6, 8], points, grads), { label: "hand" });
    try {
      expect(t.names).toEqual(["a.first", "b.second"]);
      const rows = trajectoryRows(t);
      expect(rows.map((r) => r.step)).toEqual([2, 4, 6, 8]);
      const close = (a: number | null, b: number | null) => (b === null ? expect(a).toBeNull() : expect(a!).toBeCloseTo(b, 6));
      rows.forEach((r, k) => {
        expect(r.run).toBe("hand");
        close(r.param_norm, norm(points[k]!));
        close(r.update_norm, k === 0 ? null : norm(sub(points[k]!, points[k - 1]!)));
        close(r.update_cosine_prev, k < 2 ? null : cos(sub(points[k]!, points[k - 1]!), sub(points[k - 1]!, points[k - 2]!)));
        close(r.grad_norm, grads[k] ? norm(grads[k]!) : null);
        close(r.grad_cosine_prev, grads[k] && k > 0 && grads[k - 1] ? cos(grads[k]!, grads[k - 1]!) : null);
      });
    } finally {
      disposeTrajectory(t);
    }
  });

  it("a name filter keeps matching tensors; a filter matching nothing is an error", () => {
    const t = readRunTrajectory(join(work, "hand"), { filter: /second/ });
    try {
      expect(t.names).toEqual(["b.second"]);
      expect(t.points[0]!.shape).toEqual([4]);
    } finally {
      disposeTrajectory(t);
    }
    expect(() => readRunTrajectory(join(work, "hand"), { filter: /absent/ })).toThrow(/no tensor matches absent/);
  });
});

describe("jointPca", () => {
  it("fits one space on the checkpoints of two runs: explained ratios and scores of a known structure", () => {
    // Points = offset + a_i e1 + b_i e2 over both runs together (a, b zero-mean and orthogonal).
    const s2 = Math.SQRT1_2;
    const e1 = [s2, s2, 0, 0, 0, 0];
    const e2 = [0, 0, 0, 0, s2, -s2];
    const a = [4, 2, -2, -4];
    const b = [1, -1, -1, 1];
    const offset = [1, 2, 3, 4, 5, 6];
    const p = a.map((_, i) => offset.map((o, j) => o + a[i]! * e1[j]! + b[i]! * e2[j]!));
    const general = readRunTrajectory(handRun("general", [1, 2], [p[0]!, p[1]!], [null, null]), { label: "general" });
    const narrow = readRunTrajectory(handRun("narrow", [1, 2], [p[2]!, p[3]!], [null, null]), { label: "narrow" });
    try {
      const r = jointPca([general, narrow], 2);
      const total = dot(a, a) + dot(b, b);
      expect(r.explained[0]!).toBeCloseTo(dot(a, a) / total, 6);
      expect(r.explained[1]!).toBeCloseTo(dot(b, b) / total, 6);
      expect(r.rows.map((x) => `${x.run}@${x.step}`)).toEqual(["general@1", "general@2", "narrow@1", "narrow@2"]);
      const pc1 = r.rows.map((x) => x.scores[0]!);
      const sign = Math.sign(dot(pc1, a));
      pc1.forEach((s, i) => expect(s).toBeCloseTo(sign * a[i]!, 4));
      // Fitted on one run alone, the centre moves: the scores differ from the joint fit's.
      const alone = jointPca([narrow], 1);
      expect(Math.abs(alone.rows[0]!.scores[0]!)).not.toBeCloseTo(Math.abs(pc1[2]!), 2);
    } finally {
      disposeTrajectory(general);
      disposeTrajectory(narrow);
    }
  });

  it("runs holding other tensors are refused", () => {
    const one = readRunTrajectory(join(work, "hand"));
    const other = readRunTrajectory(join(work, "hand"), { filter: /first/ });
    try {
      expect(() => jointPca([one, other])).toThrow(/holds other tensors/);
    } finally {
      disposeTrajectory(one);
      disposeTrajectory(other);
    }
  });
});

const stepRuns: Record<string, string> = {};
const train = (name: string, fields: Record<string, unknown>) => {
  const out = join(work, name);
  runTraining(
    resolveRunConfig(
      {
        model: modelDir,
        output_dir: out,
        data: { train: MEDICAL, max_length: 160 },
        training: { max_steps: 3, batch_size: 2, gradient_accumulation: 2, lr: 2e-2, warmup_steps: 0, save_steps: 1, max_grad_norm: 1e-4 },
        ...fields,
      },
      `${name}.yaml`,
    ),
  );
  stepRuns[name] = out;
  return out;
};

describe("checkpoints of real runs", { timeout: 600_000 }, () => {
  it("the saved gradient is the accumulated one before clipping: its norm is the logged (pre-clipping) grad_norm, far above max_grad_norm", () => {
    for (const [name, fields] of [
      ["lora-run", { method: "lora", lora: { r: 2, alpha: 4, target_modules: ["q_proj", "down_proj"], init_b: "random" } }],
      ["sv-run", { method: "steering", steering: { layer: 1, alpha: 4 } }],
    ] as const) {
      const out = train(name, fields);
      const logged = readFileSync(join(out, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { step?: number; grad_norm?: number })
        .filter((m) => m.grad_norm !== undefined);
      const t = readRunTrajectory(out);
      try {
        const rows = trajectoryRows(t);
        expect(rows.map((r) => r.step)).toEqual([1, 2, 3]);
        rows.forEach((r, k) => {
          expect(logged[k]!.grad_norm!).toBeGreaterThan(1e-2);
          expect(r.grad_norm! / logged[k]!.grad_norm!).toBeCloseTo(1, 5);
        });
      } finally {
        disposeTrajectory(t);
      }
    }
  });
});

const built = existsSync("dist/cli/main.js");
describe.skipIf(!built)(
  "emlab gradients (skipped when dist/ is not built: run npx tsc -p tsconfig.build.json)",
  { timeout: 600_000 },
  () => {
    const emlab = (args: string[]) => spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 300_000 });
    const csv = (file: string) => parseCsv(readFileSync(file, "utf8")).rows.filter((r) => !(r.length === 1 && r[0] === ""));

    it("writes trajectory.csv, a joint pca.csv over two runs, pca_explained.csv and loss_gradients.csv for a LoRA run", () => {
      const second = train("lora-run-2", {
        method: "lora",
        lora: { r: 2, alpha: 4, target_modules: ["q_proj", "down_proj"], init_b: "random" },
        training: { max_steps: 2, batch_size: 2, gradient_accumulation: 1, lr: 1e-2, warmup_steps: 0, save_steps: 1, seed: 3 },
      });
      const out = join(work, "grad-out");
      const r = emlab([
        "gradients",
        "--run",
        `${stepRuns["lora-run"]},${second}`,
        "--labels",
        "general,narrow",
        "--model",
        modelDir,
        "--data",
        MEDICAL,
        "--count",
        "4",
        "--out",
        out,
      ]);
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.status).toBe(0);
      const trajectory = csv(join(out, "trajectory.csv"));
      expect(trajectory[0]).toEqual(["run", "step", "param_norm", "update_norm", "update_cosine_prev", "grad_norm", "grad_cosine_prev"]);
      expect(trajectory.slice(1).map((row) => `${row[0]}@${row[1]}`)).toEqual([
        "general@1",
        "general@2",
        "general@3",
        "narrow@1",
        "narrow@2",
      ]);
      const pcaRows = csv(join(out, "pca.csv"));
      expect(pcaRows[0]).toEqual(["run", "step", "pc1", "pc2", "pc3"]);
      expect(pcaRows.length).toBe(6);
      const explained = csv(join(out, "pca_explained.csv"));
      expect(explained[0]).toEqual(["component", "explained_variance_ratio"]);
      expect(explained.slice(1).reduce((s, row) => s + Number(row[1]), 0)).toBeLessThanOrEqual(1 + 1e-9);
      const loss = csv(join(out, "loss_gradients.csv"));
      expect(loss[0]).toEqual([
        "run",
        "step",
        "loss_grad_norm",
        "cosine_with_params",
        "cosine_with_training_gradient",
        "cosine_with_direction",
      ]);
      expect(loss.length).toBe(6);

      // Independent: the mean-batch CE gradient of the final adapter (= last checkpoint) by plain autograd.
      const model = loadModel(modelDir);
      const adapter = loadPeftAdapter(join(stepRuns["lora-run"]!, "adapter"), model, { trainable: true });
      model.decoder.adapters.attach(adapter);
      try {
        const tokenizer = ChatTokenizer.fromDir(modelDir);
        const subset = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 4, seed: 42 });
        enableGrad(() =>
          tidy(() => {
            const b = collate(subset, tokenizer.padTokenId ?? 0);
            causalLmLoss(model.decoder.forward(b.ids, { attentionMask: b.attentionMask }).logits!, b.labels).backward();
          }),
        );
        const squared = [...adapter.modules.values()].reduce(
          (s, m) => s + tidy(() => m.A.grad!.square().sum().toNumber() + m.B.grad!.square().sum().toNumber()),
          0,
        );
        const last = loss.find((row) => row[0] === "general" && row[1] === "3")!;
        expect(Number(last[2])).toBeCloseTo(Math.sqrt(squared), 4);
        expect(last[5]).toBe("");
      } finally {
        model.decoder.adapters.detach(adapter);
        adapter.dispose();
        model.dispose();
      }
    });

    it("follows a steering run; bad arguments are usage errors and write nothing", () => {
      const out = join(work, "grad-sv");
      const r = emlab(["gradients", "--run", stepRuns["sv-run"]!, "--model", modelDir, "--data", MEDICAL, "--count", "2", "--out", out]);
      expect(r.status).toBe(0);
      const loss = csv(join(out, "loss_gradients.csv"));
      expect(loss.length).toBe(4);
      for (const row of loss.slice(1)) expect(Number(row[2])).toBeGreaterThan(0);
      const mixed = emlab(["gradients", "--run", `${stepRuns["sv-run"]},${stepRuns["lora-run"]}`, "--out", join(work, "grad-mixed")]);
      expect(mixed.status).not.toBe(0);
      expect(mixed.stderr).toMatch(/holds other tensors/);
      const noModel = emlab(["gradients", "--run", stepRuns["sv-run"]!, "--data", MEDICAL, "--out", join(work, "grad-x")]);
      expect(noModel.status).toBe(2);
      expect(noModel.stderr).toMatch(/--data needs --model/);
      expect(existsSync(join(work, "grad-x"))).toBe(false);
    });
  },
);
