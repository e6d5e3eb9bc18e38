// Covers src/models/load.ts (with hf-config.ts, families.ts, weights.ts, random.ts): variant model directories built
// from the HF fixtures (older rope_theta/rope_scaling configs, sharded checkpoints, bf16, multimodal Gemma 3 wrappers,
// unused and tied weights) checked against the fixtures' logits, the typed errors, and the random model writer.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from "../../src/io/safetensors.js";
import { ModelConfigError, ModelWeightsError, UnsupportedArchitectureError } from "../../src/models/errors.js";
import { type LoadedModel, type ModelLoadOptions, loadModel } from "../../src/models/load.js";
import { writeRandomModel } from "../../src/models/random.js";
import { type Tensor, tensor, tidy, zeros } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const FIXTURES = "test/fixtures/hf/models";
const FAMILIES = ["qwen2", "llama", "gemma3"] as const;
type Family = (typeof FAMILIES)[number];
type Json = Record<string, unknown>;

let root = "";
let counter = 0;
/** Fixture input_ids and logits, loaded before the per-test leak baseline. */
const expected = new Map<Family, { ids: Tensor; logits: Tensor }>();

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "emlab-load-"));
  for (const family of FAMILIES) {
    const { tensors } = loadSafetensors(join(FIXTURES, family, "expected.safetensors"), { names: ["input_ids", "logits"] });
    expected.set(family, { ids: tensors.get("input_ids")!, logits: tensors.get("logits")! });
  }
});
afterAll(() => {
  for (const { ids, logits } of expected.values()) {
    ids.dispose();
    logits.dispose();
  }
  rmSync(root, { recursive: true, force: true });
});

useLeakCheck();

// ---- helpers ---------------------------------------------------------------------------------------

const fixtureConfig = (family: Family): Json => JSON.parse(readFileSync(join(FIXTURES, family, "config.json"), "utf8")) as Json;

/** A writable copy of a fixture directory (config.json, generation_config.json, model.safetensors). */
function copyFixture(family: Family): string {
  const dir = join(root, `${family}-${counter++}`);
  mkdirSync(dir);
  for (const name of ["config.json", "generation_config.json", "model.safetensors"]) {
    writeFileSync(join(dir, name), readFileSync(join(FIXTURES, family, name)));
  }
  return dir;
}

const writeConfig = (dir: string, config: unknown): void => writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);

/** A copy of `family` whose config.json is `edit(fixture config)`. */
function withConfig(family: Family, edit: (config: Json) => unknown): string {
  const dir = copyFixture(family);
  writeConfig(dir, edit(fixtureConfig(family)));
  return dir;
}

/** Rewrites dir/model.safetensors as `edit(all its tensors)` (tensors made inside are freed afterwards). */
function rewriteWeights(dir: string, edit: (tensors: Map<string, Tensor>) => Map<string, Tensor>): void {
  const file = join(dir, "model.safetensors");
  tidy(() => {
    const { tensors, metadata } = loadSafetensors(file);
    saveSafetensors(file, edit(tensors), metadata);
  });
}

function withModel<T>(dir: string, fn: (model: LoadedModel) => T, options: ModelLoadOptions = {}): T {
  const model = loadModel(dir, options);
  try {
    return fn(model);
  } finally {
    model.dispose();
  }
}

/** Max |logits - fixture logits| of the model in `dir` on the fixture's input_ids. */
function logitsError(dir: string, family: Family, options: ModelLoadOptions = {}): number {
  const { ids, logits } = expected.get(family)!;
  return withModel(
    dir,
    (model) =>
      tidy(() => {
        const out = model.decoder.forward(ids).logits!;
        expect(out.shape).toEqual(logits.shape);
        return out.to("f32").sub(logits).abs().max().toNumber();
      }),
    options,
  );
}

/** Runs `fn`, which must throw an instance of `kind`; returns the error. */
function thrown<E>(fn: () => unknown, kind: abstract new (...args: never[]) => E): E {
  let error: unknown;
  try {
    const result = fn() as LoadedModel | undefined;
    result?.dispose();
  } catch (e) {
    error = e;
  }
  expect(error, "an error is thrown").toBeDefined();
  expect(error).toBeInstanceOf(kind);
  return error as E;
}

const clone = (t: Tensor): Tensor => t.clone();

// ---- 1. older config forms --------------------------------------------------------------------------

describe("older config forms (rope_theta + rope_scaling)", () => {
  const llamaOld = (config: Json, scaling: Json | null): Json => {
    const { rope_parameters: _, ...rest } = config;
    return { ...rest, rope_theta: 500000.0, rope_scaling: scaling };
  };
  const llama3 = { rope_type: "llama3", factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 };

  it("llama: rope_theta + rope_scaling {rope_type: llama3} gives the fixture logits", () => {
    const dir = withConfig("llama", (c) => llamaOld(c, llama3));
    expect(logitsError(dir, "llama")).toBeLessThanOrEqual(1e-4);
  });

  it("llama: the pre-4.4x key `type` in rope_scaling is read the same way", () => {
    const { rope_type: _, ...rest } = llama3;
    const dir = withConfig("llama", (c) => llamaOld(c, { ...rest, type: "llama3" }));
    expect(logitsError(dir, "llama")).toBeLessThanOrEqual(1e-4);
  });

  it("llama: the fixture is sensitive to the scaling (no rope_scaling gives other logits)", () => {
    const dir = withConfig("llama", (c) => llamaOld(c, null));
    expect(logitsError(dir, "llama")).toBeGreaterThan(1e-3);
  });

  const gemmaOld = (config: Json, global: number, local: number): Json => {
    const { rope_parameters: _, ...rest } = config;
    return { ...rest, rope_theta: global, rope_local_base_freq: local, rope_scaling: null };
  };

  it("gemma3: rope_theta (global 1e6) + rope_local_base_freq (1e4) gives the fixture logits", () => {
    const dir = withConfig("gemma3", (c) => gemmaOld(c, 1e6, 1e4));
    expect(logitsError(dir, "gemma3")).toBeLessThanOrEqual(1e-4);
  });

  it("gemma3: without layer_types, sliding_window_pattern 2 makes layer 0 local and layer 1 global", () => {
    const dir = withConfig("gemma3", (c) => {
      const { layer_types: _, _sliding_window_pattern: __, ...rest } = gemmaOld(c, 1e6, 1e4);
      return { ...rest, sliding_window_pattern: 2 };
    });
    expect(logitsError(dir, "gemma3")).toBeLessThanOrEqual(1e-4);
  });

  it("gemma3: the fixture tells the two bases apart (swapped bases give other logits)", () => {
    const dir = withConfig("gemma3", (c) => gemmaOld(c, 1e4, 1e6));
    expect(logitsError(dir, "gemma3")).toBeGreaterThan(1e-3);
  });

  it("qwen2: plain rope_theta (rope_scaling null) gives the fixture logits", () => {
    const dir = withConfig("qwen2", (c) => {
      const { rope_parameters: _, ...rest } = c;
      return { ...rest, rope_theta: 1000000.0, rope_scaling: null };
    });
    expect(logitsError(dir, "qwen2")).toBeLessThanOrEqual(1e-4);
  });

  it("qwen2: the fixture is sensitive to rope_theta (1e4 gives other logits)", () => {
    const dir = withConfig("qwen2", (c) => {
      const { rope_parameters: _, ...rest } = c;
      return { ...rest, rope_theta: 10000.0 };
    });
    expect(logitsError(dir, "qwen2")).toBeGreaterThan(1e-3);
  });
});

// ---- 2. sharded checkpoints -------------------------------------------------------------------------

describe("sharded checkpoints", () => {
  /** Splits qwen2's weights over two shards plus model.safetensors.index.json; returns the dir and weight map. */
  function shardedQwen2(): { dir: string; weightMap: Record<string, string> } {
    const dir = copyFixture("qwen2");
    const file = join(dir, "model.safetensors");
    const weightMap: Record<string, string> = {};
    tidy(() => {
      const { tensors } = loadSafetensors(file);
      const names = [...tensors.keys()].sort();
      const half = Math.ceil(names.length / 2);
      const shards = [names.slice(0, half), names.slice(half)];
      shards.forEach((list, i) => {
        const shard = `model-0000${i + 1}-of-00002.safetensors`;
        saveSafetensors(join(dir, shard), new Map(list.map((n) => [n, tensors.get(n)!])), { format: "pt" });
        for (const n of list) weightMap[n] = shard;
      });
    });
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    unlinkSync(file);
    return { dir, weightMap };
  }

  it("two shards + index give the fixture logits, every weight from its shard", () => {
    const { dir, weightMap } = shardedQwen2();
    expect(new Set(Object.values(weightMap)).size).toBe(2);
    expect(logitsError(dir, "qwen2")).toBeLessThanOrEqual(1e-4);
    withModel(dir, (model) => {
      expect([...model.parameters.keys()].sort()).toEqual(Object.keys(weightMap).sort());
      expect(model.unusedWeights).toEqual([]);
    });
  });

  it("an index naming a missing shard is a ModelWeightsError naming that shard", () => {
    const { dir } = shardedQwen2();
    const shard = join(dir, "model-00002-of-00002.safetensors");
    unlinkSync(shard);
    const error = thrown(() => loadModel(dir), ModelWeightsError);
    expect(error.file).toBe(shard);
    expect(error.message).toContain(shard);
  });
});

// ---- 3. dtype -----------------------------------------------------------------------------------------

describe("dtype", () => {
  it("default is f32: parameters and logits f32", () => {
    const { ids } = expected.get("qwen2")!;
    withModel(join(FIXTURES, "qwen2"), (model) => {
      expect(model.parameters.size).toBeGreaterThan(0);
      for (const [name, p] of model.parameters) expect(p.dtype, name).toBe("f32");
      expect(model.decoder.dtype).toBe("f32");
      tidy(() => {
        expect(model.decoder.forward(ids).logits!.dtype).toBe("f32");
      });
    });
  });

  it("{dtype: 'bf16'}: parameters and logits bf16, logits close to the fixture, argmax agrees", () => {
    const { ids, logits: want } = expected.get("qwen2")!;
    withModel(
      join(FIXTURES, "qwen2"),
      (model) => {
        for (const [name, p] of model.parameters) expect(p.dtype, name).toBe("bf16");
        expect(model.decoder.dtype).toBe("bf16");
        tidy(() => {
          const logits = model.decoder.forward(ids).logits!;
          expect(logits.dtype).toBe("bf16");
          const got = logits.to("f32");
          const error = got.sub(want).abs().max().toNumber();
          expect(error).toBeLessThanOrEqual(0.05);
          // Really computed in bf16: not bit-identical to the f32 reference.
          expect(error).toBeGreaterThan(0);
          const agreement = got.argmax(-1).eq(want.argmax(-1)).to("f32").mean().toNumber();
          expect(agreement).toBeGreaterThan(0.9);
        });
      },
      { dtype: "bf16" },
    );
  });
});

// ---- 4. Gemma 3 multimodal checkpoints ----------------------------------------------------------------

describe("Gemma 3 multimodal checkpoints", () => {
  function multimodal(rename: (name: string) => string, extra: string[]): string {
    const dir = copyFixture("gemma3");
    const { architectures: _, ...text } = fixtureConfig("gemma3");
    writeConfig(dir, { architectures: ["Gemma3ForConditionalGeneration"], model_type: "gemma3", text_config: text });
    rewriteWeights(dir, (tensors) => {
      const out = new Map<string, Tensor>();
      for (const [name, t] of tensors) out.set(rename(name), t);
      extra.forEach((name, i) => out.set(name, zeros([3, 4 + i])));
      return out;
    });
    return dir;
  }

  it("model.language_model.* weights with a vision tower load; the vision tensor is unused", () => {
    const dir = multimodal((n) => `model.language_model.${n.slice("model.".length)}`, ["model.vision_tower.foo"]);
    expect(logitsError(dir, "gemma3")).toBeLessThanOrEqual(1e-4);
    withModel(dir, (model) => {
      expect(model.spec.family).toBe("gemma3");
      expect(model.config.architectures?.[0]).toBe("Gemma3ForConditionalGeneration");
      expect(model.unusedWeights).toEqual(["model.vision_tower.foo"]);
      expect(model.parameters.has("model.embed_tokens.weight")).toBe(true);
    });
  });

  it("the older language_model.model.* layout loads too; vision tower and projector are unused", () => {
    const extra = ["vision_tower.vision_model.foo", "multi_modal_projector.mm_input_projection_weight"];
    const dir = multimodal((n) => `language_model.model.${n.slice("model.".length)}`, extra);
    expect(logitsError(dir, "gemma3")).toBeLessThanOrEqual(1e-4);
    withModel(dir, (model) => {
      expect([...model.unusedWeights].sort()).toEqual([...extra].sort());
    });
  });
});

// ---- 5. unused and tied weights -----------------------------------------------------------------------

describe("unused and tied weights", () => {
  it("with allowUnusedWeights, an extra tensor is listed in unusedWeights and does not change the logits", () => {
    const dir = copyFixture("qwen2");
    rewriteWeights(dir, (tensors) => new Map([...tensors, ["model.layers.0.extra.weight", zeros([4, 4])]]));
    expect(logitsError(dir, "qwen2", { allowUnusedWeights: true })).toBeLessThanOrEqual(1e-4);
    withModel(
      dir,
      (model) => {
        expect(model.unusedWeights).toEqual(["model.layers.0.extra.weight"]);
        expect(model.parameters.has("model.layers.0.extra.weight")).toBe(false);
      },
      { allowUnusedWeights: true },
    );
  });

  it("the fixture itself has no unused weights", () => {
    withModel(join(FIXTURES, "qwen2"), (model) => expect(model.unusedWeights).toEqual([]));
  });

  it("qwen2 (tied): no lm_head parameter; the decoder's lmHead is the embedding tensor", () => {
    const names = [...readSafetensorsHeader(join(FIXTURES, "qwen2", "model.safetensors")).entries.keys()].sort();
    withModel(join(FIXTURES, "qwen2"), (model) => {
      expect(model.spec.tieEmbeddings).toBe(true);
      expect(model.parameters.has("lm_head.weight")).toBe(false);
      expect([...model.parameters.keys()].sort()).toEqual(names);
      const embed = model.parameters.get("model.embed_tokens.weight");
      expect(model.decoder.weights.lmHead).toBe(embed);
      expect(model.decoder.weights.embed).toBe(embed);
    });
  });

  it("a tied checkpoint that also stores lm_head.weight: not a parameter and not reported unused", () => {
    const dir = copyFixture("qwen2");
    rewriteWeights(dir, (tensors) => new Map([...tensors, ["lm_head.weight", clone(tensors.get("model.embed_tokens.weight")!)]]));
    withModel(dir, (model) => {
      expect(model.parameters.has("lm_head.weight")).toBe(false);
      expect(model.unusedWeights).toEqual([]);
      expect(model.decoder.weights.lmHead).toBe(model.parameters.get("model.embed_tokens.weight"));
    });
  });

  it("llama (untied): lm_head.weight is a parameter, distinct from the embedding, used as lmHead", () => {
    withModel(join(FIXTURES, "llama"), (model) => {
      expect(model.spec.tieEmbeddings).toBe(false);
      const head = model.parameters.get("lm_head.weight");
      expect(head).toBeDefined();
      expect(head!.shape).toEqual([512, 64]);
      expect(model.decoder.weights.lmHead).toBe(head);
      expect(model.decoder.weights.lmHead).not.toBe(model.parameters.get("model.embed_tokens.weight"));
      // The two really hold different values (so an implementation tying them would fail the parity tests).
      expect(tidy(() => head!.sub(model.parameters.get("model.embed_tokens.weight")!).abs().max().toNumber())).toBeGreaterThan(0);
    });
  });
});

// ---- 6. typed errors ----------------------------------------------------------------------------------

describe("typed errors", () => {
  it("config.json missing: ModelConfigError naming the file", () => {
    const dir = copyFixture("qwen2");
    const file = join(dir, "config.json");
    unlinkSync(file);
    const error = thrown(() => loadModel(dir), ModelConfigError);
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
  });

  it("config.json not valid JSON: ModelConfigError naming the file", () => {
    const dir = copyFixture("qwen2");
    const file = join(dir, "config.json");
    writeFileSync(file, '{ "hidden_size": 64,');
    const error = thrown(() => loadModel(dir), ModelConfigError);
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/JSON/);
  });

  it('a field of the wrong type ("hidden_size": "64"): ModelConfigError naming file and field', () => {
    const dir = withConfig("qwen2", (c) => ({ ...c, hidden_size: "64" }));
    const file = join(dir, "config.json");
    const error = thrown(() => loadModel(dir), ModelConfigError);
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
    expect(error.message).toContain("hidden_size");
  });

  it("a wrong-typed field inside a multimodal text_config names the field too", () => {
    const dir = copyFixture("gemma3");
    writeConfig(dir, {
      architectures: ["Gemma3ForConditionalGeneration"],
      model_type: "gemma3",
      text_config: { ...fixtureConfig("gemma3"), num_hidden_layers: "2" },
    });
    const error = thrown(() => loadModel(dir), ModelConfigError);
    expect(error.message).toContain(join(dir, "config.json"));
    expect(error.message).toContain("num_hidden_layers");
  });

  it("unsupported architecture: UnsupportedArchitectureError listing the supported ones", () => {
    const dir = withConfig("qwen2", (c) => ({ ...c, architectures: ["MambaForCausalLM"], model_type: "mamba" }));
    const file = join(dir, "config.json");
    const error = thrown(() => loadModel(dir), UnsupportedArchitectureError);
    expect(error.architecture).toBe("MambaForCausalLM");
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
    expect(error.message).toContain("MambaForCausalLM");
    for (const supported of ["Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"]) {
      expect(error.message).toContain(supported);
    }
  });

  it('unsupported rope_type "yarn": ModelConfigError naming file and type', () => {
    const dir = withConfig("qwen2", (c) => ({
      ...c,
      rope_parameters: { rope_type: "yarn", rope_theta: 1000000.0, factor: 4.0, original_max_position_embeddings: 64 },
    }));
    const file = join(dir, "config.json");
    const error = thrown(() => loadModel(dir), ModelConfigError);
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
    expect(error.message).toContain("yarn");
  });

  it("older form with rope_scaling {rope_type: yarn} is rejected the same way", () => {
    const dir = withConfig("qwen2", (c) => {
      const { rope_parameters: _, ...rest } = c;
      return { ...rest, rope_theta: 1000000.0, rope_scaling: { rope_type: "yarn", factor: 4.0 } };
    });
    const error = thrown(() => loadModel(dir), ModelConfigError);
    expect(error.message).toContain("yarn");
  });

  it("a missing weight: ModelWeightsError with the tensor set, naming tensor and file", () => {
    const dir = copyFixture("qwen2");
    const name = "model.layers.1.mlp.down_proj.weight";
    rewriteWeights(dir, (tensors) => new Map([...tensors].filter(([n]) => n !== name)));
    const file = join(dir, "model.safetensors");
    const error = thrown(() => loadModel(dir), ModelWeightsError);
    expect(error.tensor).toBe(name);
    expect(error.file).toBe(file);
    expect(error.message).toContain(name);
    expect(error.message).toContain(file);
  });

  it("a mis-shaped weight: ModelWeightsError naming tensor, file, and both shapes", () => {
    const dir = copyFixture("qwen2");
    const name = "model.layers.0.mlp.up_proj.weight";
    rewriteWeights(dir, (tensors) => {
      expect(tensors.get(name)!.shape).toEqual([128, 64]);
      return new Map([...tensors].map(([n, t]) => [n, n === name ? zeros([128, 32]) : t] as [string, Tensor]));
    });
    const file = join(dir, "model.safetensors");
    const error = thrown(() => loadModel(dir), ModelWeightsError);
    expect(error.tensor).toBe(name);
    expect(error.file).toBe(file);
    expect(error.message).toContain(name);
    expect(error.message).toContain(file);
    expect(error.message).toContain("[128, 32]");
    expect(error.message).toContain("[128, 64]");
  });

  it("a truncated model.safetensors: ModelWeightsError naming the file and the tensor cut off", () => {
    const dir = copyFixture("qwen2");
    const file = join(dir, "model.safetensors");
    const header = readSafetensorsHeader(file);
    const last = [...header.entries.values()].sort((a, b) => b.end - a.end)[0]!;
    truncateSync(file, header.dataStart + last.end - 100);
    const error = thrown(() => loadModel(dir), ModelWeightsError);
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
    expect(error.message).toContain(last.name);
  });

  it("a model.safetensors shorter than its 8-byte header length: ModelWeightsError naming the file", () => {
    const dir = copyFixture("qwen2");
    const file = join(dir, "model.safetensors");
    truncateSync(file, 5);
    const error = thrown(() => loadModel(dir), ModelWeightsError);
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
  });

  it("no safetensors at all: ModelWeightsError naming the directory", () => {
    const dir = copyFixture("qwen2");
    unlinkSync(join(dir, "model.safetensors"));
    const error = thrown(() => loadModel(dir), ModelWeightsError);
    expect(error.file).toBe(dir);
    expect(error.message).toContain(dir);
    expect(error.message).toContain("model.safetensors");
  });
});

// ---- 7. random model writer -----------------------------------------------------------------------------

describe("writeRandomModel", () => {
  const tinyQwen3 = {
    architectures: ["Qwen3ForCausalLM"],
    vocab_size: 300,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 8,
    intermediate_size: 64,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  };
  // Closed form: embed 300*32; per layer 2 norms (32 each), q 32*32, k and v 16*32, o 32*32, q/k norms 8 each,
  // gate/up/down 64*32 each; final norm 32; tied, so no lm_head.
  const perLayer = 2 * 32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 2 * 8 + 3 * 64 * 32;
  const expectedCount = 300 * 32 + 2 * perLayer + 32;

  it("writes a loadable qwen3 model whose parameter count matches, with finite logits of the right shape", () => {
    const dir = join(root, `random-${counter++}`);
    const count = writeRandomModel(dir, tinyQwen3, { seed: 1 });
    expect(count).toBe(expectedCount);
    withModel(dir, (model) => {
      expect(model.spec.family).toBe("qwen3");
      expect(model.unusedWeights).toEqual([]);
      expect(model.parameters.has("lm_head.weight")).toBe(false);
      const total = [...model.parameters.values()].reduce((n, p) => n + p.numel, 0);
      expect(total).toBe(count);
      tidy(() => {
        const ids = tensor(BigInt64Array.from([1n, 2n, 3n, 299n, 0n, 7n, 8n, 9n, 10n, 11n]), { shape: [2, 5] });
        const logits = model.decoder.forward(ids).logits!;
        expect(logits.shape).toEqual([2, 5, 300]);
        expect(logits.dtype).toBe("f32");
        expect(logits.isfinite().all().item()).toBe(true);
      });
    });
  });

  it("norms are 1 and weights ~ N(0, 0.02^2); the same seed rewrites the same weights", () => {
    const a = join(root, `random-${counter++}`);
    const b = join(root, `random-${counter++}`);
    writeRandomModel(a, tinyQwen3, { seed: 3 });
    writeRandomModel(b, tinyQwen3, { seed: 3 });
    expect(readFileSync(join(a, "model.safetensors")).equals(readFileSync(join(b, "model.safetensors")))).toBe(true);
    withModel(a, (model) =>
      tidy(() => {
        const norm = model.parameters.get("model.layers.0.input_layernorm.weight")!;
        expect(norm.sub(1).abs().max().toNumber()).toBe(0);
        const embed = model.parameters.get("model.embed_tokens.weight")!;
        expect(Math.abs(embed.std().toNumber() - 0.02)).toBeLessThan(0.002);
        expect(Math.abs(embed.mean().toNumber())).toBeLessThan(0.002);
      }),
    );
  });

  it("{dtype: 'bf16'} writes BF16 tensors", () => {
    const dir = join(root, `random-${counter++}`);
    writeRandomModel(dir, tinyQwen3, { seed: 1, dtype: "bf16" });
    const header = readSafetensorsHeader(join(dir, "model.safetensors"));
    for (const entry of header.entries.values()) expect(entry.dtype, entry.name).toBe("bf16");
  });
});
