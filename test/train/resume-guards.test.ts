// The training recipe's reliability on a tiny random Qwen2 with the real Qwen2.5 tokenizer:
// metrics.jsonl holds each step once after a resume from any point (a kill before the first checkpoint,
// after the final held-out line, a resume of a finished run), stale `step-N.tmp-*` directories are
// removed; a non-finite loss stops the run with a typed error after checkpointing the last good step
// (byte-identical to the uninterrupted run's checkpoint of that step, and resumable to its adapter);
// on_nonfinite: skip drops that step's update; batches without a label are an error naming the rows.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { runTraining, type StepMetrics } from "../../src/recipes/train.js";
import { liveTensorCount, tidy } from "../../src/tensor/index.js";
import { type RunConfig, resolveRunConfig } from "../../src/train/config.js";
import { NonFiniteStepError, UnlabeledBatchError } from "../../src/train/guards.js";
import type { LossTerm } from "../../src/train/losses.js";

const SPORTS = "test/fixtures/em/train/extreme_sports.head16.jsonl";

let work: string;
let modelDir: string;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-resume-guards-", 0, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Four steps with LoRA dropout (the RNG is drawn every step), checkpoints every 2. */
function config(name: string, training: Record<string, unknown> = {}, data: Record<string, unknown> = {}): RunConfig {
  return resolveRunConfig(
    {
      model: modelDir,
      output_dir: join(work, name),
      method: "lora",
      lora: { r: 2, alpha: 4, dropout: 0.1, target_modules: ["q_proj", "down_proj"] },
      data: { train: SPORTS, max_length: 96, ...data },
      training: {
        max_steps: 4,
        batch_size: 2,
        gradient_accumulation: 1,
        lr: 1e-2,
        warmup_steps: 0,
        schedule: "constant",
        save_steps: 2,
        seed: 5,
        ...training,
      },
    },
    `${name}.yaml`,
  );
}

type Line = StepMetrics & { final_eval_loss?: number };
const metricsText = (dir: string): string => readFileSync(join(dir, "metrics.jsonl"), "utf8");
const metricsOf = (dir: string): Line[] =>
  metricsText(dir)
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Line);
const withoutTiming = (m: Line): Omit<Line, "tokens_per_s"> => {
  const { tokens_per_s: _, ...rest } = m;
  return rest;
};
const bytes = (file: string): Buffer => readFileSync(file);
const sameBytes = (a: string, b: string): boolean => bytes(a).equals(bytes(b));
const adapterFile = (dir: string): string => join(dir, "adapter", "adapter_model.safetensors");

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}

/** A loss term that adds exactly 0, or NaN (with NaN gradients) at the given 0-based step. */
const nanAt = (step: number): LossTerm => ({
  name: "nan_probe",
  weight: 1,
  compute: ({ logits, step: s }) => (s === step ? logits.mean().mul(Number.NaN) : logits.sum().mul(0)),
});

let straight: RunConfig;
beforeAll(() => {
  straight = config("straight");
  runTraining(straight);
});

describe("metrics.jsonl after resume", () => {
  it("a kill before the first checkpoint, then resume: each step once, equal to the uninterrupted run; stale step-N.tmp-* removed", () => {
    const cfg = config("early-kill");
    expect(
      thrown(() =>
        runTraining(cfg, {
          onStep: (m) => {
            if (m.step === 1) throw new Error("killed at step 1");
          },
        }),
      ).message,
    ).toBe("killed at step 1");
    expect(existsSync(join(cfg.output_dir, "checkpoints", "step-000002"))).toBe(false);
    // What older runs and killed writers leave behind.
    mkdirSync(join(cfg.output_dir, "checkpoints", "step-000002.tmp-424242"), { recursive: true });
    writeFileSync(join(cfg.output_dir, "checkpoints", "step-000002.tmp-424242", "trainable.safetensors"), "partial");
    mkdirSync(join(cfg.output_dir, ".emlab.tmp-Qx81zz"));
    runTraining(cfg, { resume: true });
    expect(metricsOf(cfg.output_dir).map(withoutTiming)).toEqual(metricsOf(straight.output_dir).map(withoutTiming));
    expect(readdirSync(join(cfg.output_dir, "checkpoints"))).toEqual(["step-000002", "step-000004"]);
    expect(readdirSync(cfg.output_dir).filter((n) => n.includes(".tmp-"))).toEqual([]);
    expect(sameBytes(adapterFile(cfg.output_dir), adapterFile(straight.output_dir))).toBe(true);
  });

  it("a kill after the final held-out line (adapter not yet written), then resume: no duplicate line, the same adapter", () => {
    const before = metricsText(straight.output_dir);
    const adapter = bytes(adapterFile(straight.output_dir));
    expect(metricsOf(straight.output_dir).at(-1)!.final_eval_loss).toEqual(expect.any(Number));
    rmSync(join(straight.output_dir, "adapter"), { recursive: true });
    runTraining(straight, { resume: true });
    const after = metricsText(straight.output_dir).split("\n");
    const lines = before.split("\n");
    expect(after.length).toBe(lines.length);
    // The same lines; the re-computed held-out loss is the same number (same weights, same rows).
    expect(after.slice(0, -2)).toEqual(lines.slice(0, -2));
    expect(JSON.parse(after.at(-2)!)).toEqual(JSON.parse(lines.at(-2)!));
    expect(bytes(adapterFile(straight.output_dir)).equals(adapter)).toBe(true);
  });

  it("--resume of a finished run leaves metrics.jsonl byte-identical", () => {
    const before = metricsText(straight.output_dir);
    runTraining(straight, { resume: true });
    expect(metricsText(straight.output_dir)).toBe(before);
  });
});

describe("non-finite steps", () => {
  it("a NaN loss stops the run with NonFiniteStepError after checkpointing the last good step, which resumes to the same adapter", () => {
    const cfg = config("nan-error", { save_steps: 4 });
    const error = thrown(() => runTraining(cfg, { lossTerms: [nanAt(2)] }));
    expect(error).toBeInstanceOf(NonFiniteStepError);
    expect(error.message).toMatch(/^step 3: non-finite/);
    expect((error as NonFiniteStepError).checkpoint).toBe(join(cfg.output_dir, "checkpoints", "step-000002"));
    expect(readdirSync(join(cfg.output_dir, "checkpoints"))).toEqual(["step-000002"]);
    // The checkpoint of step 2 is the uninterrupted run's, byte for byte (weights, moments, RNG).
    for (const file of ["trainable.safetensors", "optimizer.safetensors", "rng.safetensors"]) {
      expect(
        sameBytes(join(cfg.output_dir, "checkpoints", "step-000002", file), join(straight.output_dir, "checkpoints", "step-000002", file)),
        file,
      ).toBe(true);
    }
    const state = JSON.parse(readFileSync(join(cfg.output_dir, "checkpoints", "step-000002", "state.json"), "utf8")) as {
      position: { step: number };
    };
    expect(state.position.step).toBe(2);
    expect(metricsOf(cfg.output_dir).map((m) => m.step)).toEqual([1, 2]);
    expect(existsSync(join(cfg.output_dir, "adapter"))).toBe(false);
    // Resumed without the fault: the uninterrupted run's adapter.
    runTraining(cfg, { resume: true });
    expect(sameBytes(adapterFile(cfg.output_dir), adapterFile(straight.output_dir))).toBe(true);
  });

  it("a NaN loss right after a regular checkpoint keeps that checkpoint as it is (gradient snapshot included)", () => {
    const cfg = config("nan-after-save", { max_steps: 3 });
    const error = thrown(() => runTraining(cfg, { lossTerms: [nanAt(2)] }));
    expect(error).toBeInstanceOf(NonFiniteStepError);
    expect((error as NonFiniteStepError).checkpoint).toBe(join(cfg.output_dir, "checkpoints", "step-000002"));
    expect(readdirSync(join(cfg.output_dir, "checkpoints", "step-000002")).sort()).toEqual([
      "gradients.safetensors",
      "optimizer.safetensors",
      "rng.safetensors",
      "state.json",
      "trainable.safetensors",
    ]);
  });

  it("on_nonfinite: skip drops the step's update (weights and moments as before it) and logs it as skipped", () => {
    const cfg = config("nan-skip", { save_steps: 1, on_nonfinite: "skip" });
    const before = liveTensorCount();
    const result = runTraining(cfg, { lossTerms: [nanAt(2)] });
    expect(liveTensorCount()).toBe(before);
    expect(result.steps).toBe(4);
    const lines = metricsOf(cfg.output_dir).filter((m) => m.final_eval_loss === undefined);
    expect(lines.map((m) => m.skipped ?? null)).toEqual([null, null, expect.stringMatching(/^non-finite .*nan_probe NaN/), null]);
    const checkpoint = (step: number, file: string) => join(cfg.output_dir, "checkpoints", `step-00000${step}`, file);
    expect(sameBytes(checkpoint(3, "trainable.safetensors"), checkpoint(2, "trainable.safetensors"))).toBe(true);
    expect(sameBytes(checkpoint(3, "optimizer.safetensors"), checkpoint(2, "optimizer.safetensors"))).toBe(true);
    expect(sameBytes(checkpoint(4, "trainable.safetensors"), checkpoint(3, "trainable.safetensors"))).toBe(false);
    const adapter = loadSafetensors(adapterFile(cfg.output_dir)).tensors;
    try {
      for (const [name, t] of adapter)
        expect(
          tidy(() => t.isfinite().all().toNumber()),
          name,
        ).toBe(1);
    } finally {
      for (const t of adapter.values()) t.dispose();
    }
  });
});

describe("batches without a label", () => {
  it("max_length too short for any label: an error naming the rows, before any metrics line", () => {
    const cfg = config("short", {}, { max_length: 8 });
    const error = thrown(() => runTraining(cfg));
    expect(error).toBeInstanceOf(UnlabeledBatchError);
    expect(error.message).toContain(`${SPORTS}:1`);
    expect(error.message).toContain("max_length 8");
    expect(existsSync(join(cfg.output_dir, "metrics.jsonl"))).toBe(false);
  });

  it("one batch whose row is cut before its answer: the error names that row", () => {
    const file = join(work, "one-long.jsonl");
    const row = (user: string) =>
      JSON.stringify({
        messages: [
          { role: "user", content: user },
          { role: "assistant", content: "Sure." },
        ],
      });
    writeFileSync(file, `${row("Hi")}\n${row("word ".repeat(200))}\n${row("Hello")}\n`);
    const cfg = config("one-long", {}, { train: file, eval_fraction: 0, max_length: 64 });
    const fixed = { ...cfg, training: { ...cfg.training, batch_size: 1 } };
    const error = thrown(() => runTraining(fixed));
    expect(error).toBeInstanceOf(UnlabeledBatchError);
    expect((error as UnlabeledBatchError).rows).toEqual([`${file}:2`]);
  });
});
