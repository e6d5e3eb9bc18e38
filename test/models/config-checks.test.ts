// Covers src/models/config-checks.ts and the consistency rules of src/models/load.ts (issue 13 items 4 and 9):
// every config field out of range is a ModelConfigError naming file and field (not NaN logits with exit 0),
// unsupported activations are refused per family, checkpoint tensors the config does not use are an error unless
// allowed (Gemma 3 q/k norms under a Gemma 2 config, extra layers), and integer-typed weights are refused.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { ModelConfigError, ModelWeightsError } from "../../src/models/errors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { type Tensor, tidy, zeros } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const FIXTURES = "test/fixtures/hf/models";
type Json = Record<string, unknown>;
type Family = "qwen2" | "qwen3" | "llama" | "gemma2" | "gemma3";

let root = "";
let counter = 0;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "emlab-config-checks-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
useLeakCheck();

const fixtureConfig = (family: Family): Json => JSON.parse(readFileSync(join(FIXTURES, family, "config.json"), "utf8")) as Json;

function copyFixture(family: Family, config: unknown = fixtureConfig(family)): string {
  const dir = join(root, `${family}-${counter++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, "model.safetensors"), readFileSync(join(FIXTURES, family, "model.safetensors")));
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

function rewriteWeights(dir: string, edit: (tensors: Map<string, Tensor>) => Map<string, Tensor>): void {
  const file = join(dir, "model.safetensors");
  tidy(() => {
    const { tensors, metadata } = loadSafetensors(file);
    saveSafetensors(file, edit(tensors), metadata);
  });
}

function loadError(dir: string, options: Parameters<typeof loadModel>[1] = {}): Error {
  let model: LoadedModel | undefined;
  try {
    model = loadModel(dir, options);
  } catch (error) {
    return error as Error;
  } finally {
    model?.dispose();
  }
  throw new Error(`${dir} loaded; an error was expected`);
}

/** [description, family, edit of config.json, field the message must name]. */
const BAD_CONFIGS: [string, Family, (c: Json) => void, string][] = [
  ["num_hidden_layers -1", "qwen2", (c) => (c.num_hidden_layers = -1), "num_hidden_layers"],
  ["num_hidden_layers 0", "qwen2", (c) => (c.num_hidden_layers = 0), "num_hidden_layers"],
  ["num_hidden_layers 1.5", "llama", (c) => (c.num_hidden_layers = 1.5), "num_hidden_layers"],
  ["num_hidden_layers 1e9", "qwen2", (c) => (c.num_hidden_layers = 1e9), "num_hidden_layers"],
  ["hidden_size 0", "qwen2", (c) => (c.hidden_size = 0), "hidden_size"],
  ["vocab_size 1e300", "qwen2", (c) => (c.vocab_size = 1e300), "vocab_size"],
  ["intermediate_size -64", "llama", (c) => (c.intermediate_size = -64), "intermediate_size"],
  [
    "num_attention_heads 3 (no head_dim, 64 not divisible)",
    "qwen2",
    (c) => ((c.num_attention_heads = 3), (c.num_key_value_heads = 1), delete c.head_dim),
    "hidden_size",
  ],
  ["num_key_value_heads not dividing heads", "qwen2", (c) => (c.num_key_value_heads = 3), "num_key_value_heads"],
  ["head_dim 0", "qwen3", (c) => (c.head_dim = 0), "head_dim"],
  ["rms_norm_eps 0", "qwen2", (c) => (c.rms_norm_eps = 0), "rms_norm_eps"],
  ["rms_norm_eps -1e-6", "gemma3", (c) => (c.rms_norm_eps = -1e-6), "rms_norm_eps"],
  ["rope_theta 0 (older form)", "qwen2", (c) => ((c.rope_parameters = null), (c.rope_theta = 0)), "rope_theta"],
  ["rope_parameters.rope_theta 0", "qwen2", (c) => ((c.rope_parameters as Json).rope_theta = 0), "rope_theta"],
  ["llama3 rope factor 0", "llama", (c) => ((c.rope_parameters as Json).factor = 0), "factor"],
  ["llama3 rope factor as a string", "llama", (c) => ((c.rope_parameters as Json).factor = "8"), "factor"],
  [
    "llama3 high_freq_factor equal to low_freq_factor",
    "llama",
    (c) => ((c.rope_parameters as Json).high_freq_factor = 1),
    "high_freq_factor",
  ],
  ["query_pre_attn_scalar -16", "gemma2", (c) => (c.query_pre_attn_scalar = -16), "query_pre_attn_scalar"],
  ["final_logit_softcapping 0", "gemma2", (c) => (c.final_logit_softcapping = 0), "final_logit_softcapping"],
  ["sliding_window 0", "gemma2", (c) => (c.sliding_window = 0), "sliding_window"],
  ["layer_types shorter than num_hidden_layers", "qwen2", (c) => (c.layer_types = ["full_attention"]), "layer_types"],
  ["layer_types with an unknown type", "gemma3", (c) => (c.layer_types = ["sliding_attention", "chunked_attention"]), "layer_types[1]"],
  ["eos_token_id -1", "qwen2", (c) => (c.eos_token_id = -1), "eos_token_id"],
  ["max_position_embeddings 0", "qwen2", (c) => (c.max_position_embeddings = 0), "max_position_embeddings"],
  ['hidden_act "gelu" on Llama', "llama", (c) => (c.hidden_act = "gelu"), "hidden_act"],
  ['hidden_act "relu" on Qwen2', "qwen2", (c) => (c.hidden_act = "relu"), "hidden_act"],
  ['hidden_activation "gelu" on Gemma 2', "gemma2", (c) => (c.hidden_activation = "gelu"), "hidden_activation"],
  ['hidden_activation "silu" on Gemma 3', "gemma3", (c) => (c.hidden_activation = "silu"), "hidden_activation"],
];

describe("config fields out of range are ModelConfigErrors naming file and field", () => {
  for (const [name, family, edit, field] of BAD_CONFIGS) {
    it(`${family}: ${name}`, () => {
      const config = fixtureConfig(family);
      edit(config);
      const dir = copyFixture(family, config);
      const error = loadError(dir);
      expect(error).toBeInstanceOf(ModelConfigError);
      expect(error.message).toContain(join(dir, "config.json"));
      expect(error.message).toContain(field);
    });
  }

  it("the same checks apply inside a multimodal text_config, with the path named", () => {
    const text = fixtureConfig("gemma3");
    text.rms_norm_eps = 0;
    const dir = copyFixture("gemma3", { architectures: ["Gemma3ForConditionalGeneration"], model_type: "gemma3", text_config: text });
    const error = loadError(dir);
    expect(error).toBeInstanceOf(ModelConfigError);
    expect(error.message).toContain("text_config.rms_norm_eps");
  });

  it("the supported activations load (silu and its alias swish; gelu_pytorch_tanh on Gemma)", () => {
    for (const [family, field, value] of [
      ["llama", "hidden_act", "swish"],
      ["qwen2", "hidden_act", "silu"],
      ["gemma2", "hidden_activation", "gelu_pytorch_tanh"],
    ] as const) {
      const config = fixtureConfig(family);
      config[field] = value;
      loadModel(copyFixture(family, config)).dispose();
    }
  });
});

describe("config and weights must match", () => {
  it("a num_hidden_layers smaller than the checkpoint's layers: the extra layers are an error, not silently dropped", () => {
    const config = fixtureConfig("qwen2");
    config.num_hidden_layers = 1;
    config.layer_types = ["full_attention"];
    const error = loadError(copyFixture("qwen2", config));
    expect(error).toBeInstanceOf(ModelWeightsError);
    expect(error.message).toContain("model.layers.1.");
    expect(error.message).toContain("not used");
  });

  it("a num_hidden_layers larger than the checkpoint's layers: a missing-weight error", () => {
    const config = fixtureConfig("qwen2");
    config.num_hidden_layers = 3;
    config.layer_types = ["full_attention", "full_attention", "full_attention"];
    const error = loadError(copyFixture("qwen2", config));
    expect(error).toBeInstanceOf(ModelWeightsError);
    expect(error.message).toContain("missing weight model.layers.2.");
  });

  it("Gemma 3 weights under a Gemma 2 config are refused (their q/k norms would be dropped)", () => {
    const gemma3 = fixtureConfig("gemma3");
    const config = {
      ...fixtureConfig("gemma2"),
      ...Object.fromEntries(
        ["vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim"].map((k) => [
          k,
          gemma3[k],
        ]),
      ),
    };
    config.num_hidden_layers = gemma3.num_hidden_layers;
    config.layer_types = gemma3.layer_types;
    const dir = join(root, `gemma3-as-2-${counter++}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "model.safetensors"), readFileSync(join(FIXTURES, "gemma3", "model.safetensors")));
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    const error = loadError(dir);
    expect(error).toBeInstanceOf(ModelWeightsError);
    expect(error.message).toMatch(/self_attn\.[qk]_norm\.weight/);
  });

  it("an extra tensor is an error by default and loads (listed as unused) when allowed", () => {
    const dir = copyFixture("qwen2");
    rewriteWeights(dir, (tensors) => new Map([...tensors, ["model.layers.0.extra.weight", zeros([4, 4])]]));
    expect(loadError(dir)).toBeInstanceOf(ModelWeightsError);
    const model = loadModel(dir, { allowUnusedWeights: true });
    expect(model.unusedWeights).toEqual(["model.layers.0.extra.weight"]);
    model.dispose();
  });

  it("a tensor of another modality in a text-only checkpoint is an error too", () => {
    const dir = copyFixture("qwen2");
    rewriteWeights(dir, (tensors) => new Map([...tensors, ["vision_tower.patch.weight", zeros([2, 2])]]));
    expect(loadError(dir).message).toContain("vision_tower.patch.weight");
  });

  it("rotary_emb.inv_freq buffers of older checkpoints are ignored, not errors", () => {
    const dir = copyFixture("llama");
    rewriteWeights(dir, (tensors) => new Map([...tensors, ["model.layers.0.self_attn.rotary_emb.inv_freq", zeros([8])]]));
    loadModel(dir).dispose();
  });
});

describe("integer-typed weights are refused (issue 13 item 9)", () => {
  for (const name of ["model.norm.weight", "model.layers.0.self_attn.q_proj.bias", "model.layers.0.mlp.up_proj.weight"]) {
    it(`${name} stored as i32: ModelWeightsError naming the tensor and its dtype`, () => {
      const dir = copyFixture("qwen2");
      rewriteWeights(dir, (tensors) => new Map([...tensors].map(([k, t]) => [k, k === name ? t.to("i32") : t])));
      const error = loadError(dir) as ModelWeightsError;
      expect(error).toBeInstanceOf(ModelWeightsError);
      expect(error.tensor).toBe(name);
      expect(error.message).toContain("i32");
    });
  }

  it("an integer compute dtype is refused", () => {
    expect(loadError(copyFixture("qwen2"), { dtype: "i32" })).toBeInstanceOf(ModelConfigError);
  });
});
