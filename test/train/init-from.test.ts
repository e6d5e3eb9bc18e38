// Continuing training (`init_from`): a LoRA run (one adapter, or several saved as adapter/<name>) or a
// steering run starts from a saved solution. With lr 1e-12 and no weight decay the one step changes each
// value by at most ~1e-12, so the continued run's artefact must equal the one it started from to 1e-9; a solution of another
// shape or scale is refused with an error naming both, before the run starts training.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { runTraining } from "../../src/recipes/train.js";
import { tidy } from "../../src/tensor/index.js";
import { resolveRunConfig } from "../../src/train/config.js";
import { InitFromError } from "../../src/train/init-from.js";

const SPORTS = "test/fixtures/em/train/extreme_sports.head16.jsonl";
const MEDICAL = "test/fixtures/em/train/bad_medical_advice.head40.jsonl";
let work: string;
let modelDir: string;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-init-from-", 0, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (name: string, fields: Record<string, unknown>, training: Record<string, unknown> = {}) =>
  runTraining(
    resolveRunConfig(
      {
        model: modelDir,
        output_dir: join(work, name),
        data: { train: MEDICAL, max_length: 160 },
        training: {
          max_steps: 3,
          batch_size: 2,
          gradient_accumulation: 1,
          lr: 5e-2,
          warmup_steps: 0,
          save_steps: 100,
          weight_decay: 0,
          ...training,
        },
        ...fields,
      },
      `${name}.yaml`,
    ),
  );
const frozen = { lr: 1e-12, max_steps: 1 };
/** Equal to 1e-9 per value (the lr-1e-12 step moves values by ~1e-12 at most). */
const expectClose = (actual: Record<string, number[]>, expected: Record<string, number[]>) => {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [k, v] of Object.entries(expected)) {
    expect(actual[k]!.length, k).toBe(v.length);
    expect(Math.max(...v.map((x, i) => Math.abs(x - actual[k]![i]!))), k).toBeLessThan(1e-9);
  }
};
const tensorsOf = (file: string): Record<string, number[]> => {
  const { tensors } = loadSafetensors(file);
  const out = Object.fromEntries([...tensors].map(([k, t]) => [k, tidy(() => Array.from(t.toArray() as Float32Array))]));
  for (const t of tensors.values()) t.dispose();
  return out;
};
const lora = { r: 2, alpha: 8, use_rslora: true, target_modules: ["q_proj", "down_proj"] };

describe("init_from", { timeout: 600_000 }, () => {
  it("a LoRA run continued (without KL) from a narrow run's adapter (with KL) starts from its tensors", () => {
    const narrow = run("narrow-lora", { method: "lora", lora, kl: { data: SPORTS, weight: 1, batch_size: 2, normalization: "token" } });
    const trained = tensorsOf(join(narrow.artefact, "adapter_model.safetensors"));
    expect(Object.values(trained).some((v) => v.some((x) => x !== 0))).toBe(true);
    const continued = run("continued-lora", { method: "lora", lora, init_from: narrow.artefact }, frozen);
    expectClose(tensorsOf(join(continued.artefact, "adapter_model.safetensors")), trained);
    // The same run from scratch does not start there (B = 0).
    const fresh = run("fresh-lora", { method: "lora", lora }, frozen);
    expect(tensorsOf(join(fresh.artefact, "adapter_model.safetensors"))).not.toEqual(trained);
  });

  it("several adapters continue from adapter/<name> each", () => {
    const sections = [0, 1].map((l) => ({ name: `l${l}`, r: 1, alpha: 4, target_modules: ["down_proj"], layers_to_transform: [l] }));
    const first = run("nine-a", { method: "lora", lora: sections });
    const continued = run("nine-b", { method: "lora", lora: sections, init_from: first.artefact }, frozen);
    for (const name of ["l0", "l1"]) {
      expectClose(
        tensorsOf(join(continued.artefact, name, "adapter_model.safetensors")),
        tensorsOf(join(first.artefact, name, "adapter_model.safetensors")),
      );
    }
  });

  it("a steering run continues from a steering vector file", () => {
    const steering = { layer: 1, site: "down_proj", alpha: 4 };
    const narrow = run("narrow-sv", {
      method: "steering",
      steering,
      kl: { data: SPORTS, weight: 1, batch_size: 2, normalization: "token_vocab", accumulation: "sum" },
    });
    const continued = run("continued-sv", { method: "steering", steering, init_from: narrow.artefact }, frozen);
    const vector = tensorsOf(narrow.artefact).vector!;
    expect(vector.some((x) => x !== 0)).toBe(true);
    expectClose(tensorsOf(continued.artefact), { vector });
  });

  it("a solution of another shape or scale is an error naming both, and nothing is trained", () => {
    const narrow = join(work, "narrow-lora", "adapter");
    expect(() => run("bad-r", { method: "lora", lora: { ...lora, r: 4 }, init_from: narrow })).toThrow(
      /r 2, alpha 8.*the run's default has r 4, alpha 8/,
    );
    expect(() => run("bad-modules", { method: "lora", lora: { ...lora, target_modules: ["q_proj"] }, init_from: narrow })).toThrow(
      /does not cover the run's modules.*extra: .*down_proj/,
    );
    expect(() =>
      run("bad-alpha", {
        method: "steering",
        steering: { layer: 1, alpha: 2 },
        init_from: join(work, "narrow-sv", "steering_vector.safetensors"),
      }),
    ).toThrow(/layer 1 \(down_proj, alpha 4\); the run steers layer 1 \(down_proj, alpha 2\)/);
    expect(() => run("bad-path", { method: "lora", lora, init_from: join(work, "absent") })).toThrow(/holds no PEFT adapter/);
    let typed: unknown;
    try {
      run("bad-typed", {
        method: "steering",
        steering: { layer: 0, alpha: 4 },
        init_from: join(work, "narrow-sv", "steering_vector.safetensors"),
      });
    } catch (error) {
      typed = error;
    }
    expect(typed).toBeInstanceOf(InitFromError);
    expect((typed as InitFromError).path).toBe(join(work, "narrow-sv", "steering_vector.safetensors"));
    for (const name of ["bad-r", "bad-modules", "bad-alpha", "bad-path", "bad-typed"])
      expect(existsSync(join(work, name, "metrics.jsonl"))).toBe(false);
    expect(readFileSync(join(work, "narrow-lora", "metrics.jsonl"), "utf8")).not.toBe("");
  });
});
