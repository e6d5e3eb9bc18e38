// LoRA adapters against PEFT: the PEFT fixtures give PEFT's logits; forward with an adapter equals the
// forward with its update merged into the weights (one or several adapters, nine rank-1 adapters at nine
// layers); targeting, scaling and initialisation follow PEFT; the on-disk format round-trips bit for bit.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isTarget, LoraAdapter, type LoraConfig, LoraConfigError, linearModules } from "../../src/adapters/lora.js";
import { AdapterError, loadPeftAdapter, savePeftAdapter } from "../../src/adapters/peft.js";
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { writeRandomModel } from "../../src/models/random.js";
import { keep, liveTensorCount, manualSeed, noGrad, randn, type Tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const QWEN2 = "test/fixtures/hf/models/qwen2";
const ADAPTERS = "test/fixtures/hf/adapters";
const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

const maxAbs = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().toNumber());
const host = (t: Tensor): number[] => tidy(() => Array.from(t.toArray() as ArrayLike<number>, Number));
const bytesOf = (t: Tensor): Buffer =>
  tidy(() => {
    const a = t.toArray() as Float32Array;
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  });

/** Runs `fn`, which must throw an instance of `kind`; returns the error. */
function thrown<E>(fn: () => unknown, kind: abstract new (...args: never[]) => E): E {
  let error: unknown;
  try {
    const result = fn();
    if (result instanceof LoraAdapter) result.dispose();
  } catch (e) {
    error = e;
  }
  expect(error, "an error is thrown").toBeDefined();
  expect(error).toBeInstanceOf(kind);
  return error as E;
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-lora-"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("PEFT fixtures", () => {
  let model: LoadedModel;
  beforeAll(() => {
    model = loadModel(QWEN2);
  });
  afterAll(() => model.dispose());
  useLeakCheck();

  const cases = [
    { name: "qwen2_lora_r4_all", r: 4, alpha: 8, rslora: false, scale: 2, modules: 14, layers: null },
    { name: "qwen2_lora_r1_l1_down_rslora", r: 1, alpha: 4, rslora: true, scale: 4, modules: 1, layers: [1] },
  ];
  for (const c of cases) {
    it(`${c.name}: loads with PEFT's config and gives PEFT's logits within 1e-4`, () => {
      const dir = join(ADAPTERS, c.name);
      const adapter = loadPeftAdapter(dir, model);
      const expected = loadSafetensors(join(dir, "expected.safetensors")).tensors;
      try {
        expect(adapter.config.r).toBe(c.r);
        expect(adapter.config.alpha).toBe(c.alpha);
        expect(adapter.config.useRslora).toBe(c.rslora);
        expect(adapter.config.layersToTransform).toEqual(c.layers);
        expect(adapter.scale).toBe(c.scale);
        expect(adapter.modules.size).toBe(c.modules);
        model.decoder.adapters.attach(adapter);
        tidy(() => {
          const want = expected.get("logits")!;
          const got = model.decoder.forward(expected.get("input_ids")!).logits!;
          expect(got.shape).toEqual(want.shape);
          expect(maxAbs(got, want)).toBeLessThanOrEqual(1e-4);
          // The adapter matters: the base model is far from these logits.
          const base = model.decoder.adapters.withoutAdapters(() => model.decoder.forward(expected.get("input_ids")!).logits!);
          expect(maxAbs(base, want)).toBeGreaterThan(1e-3);
        });
      } finally {
        model.decoder.adapters.detach(adapter);
        adapter.dispose();
        for (const t of expected.values()) t.dispose();
      }
    });
  }

  it("withoutAdapters gives the base model's logits (Hugging Face's, and bit-equal to no adapter), restored after a throw", () => {
    const expected = loadSafetensors(join(QWEN2, "expected.safetensors")).tensors;
    const adapter = loadPeftAdapter(join(ADAPTERS, "qwen2_lora_r4_all"), model);
    try {
      tidy(() => {
        const ids = expected.get("input_ids")!;
        const plain = model.decoder.forward(ids).logits!;
        expect(maxAbs(plain, expected.get("logits")!)).toBeLessThanOrEqual(1e-4);
        model.decoder.adapters.attach(adapter);
        expect(model.decoder.adapters.active).toBe(true);
        const adapted = model.decoder.forward(ids).logits!;
        expect(maxAbs(adapted, plain)).toBeGreaterThan(1e-3);
        const without = model.decoder.adapters.withoutAdapters(() => {
          expect(model.decoder.adapters.active).toBe(false);
          return model.decoder.forward(ids).logits!;
        });
        expect(maxAbs(without, plain)).toBe(0);
        expect(() =>
          model.decoder.adapters.withoutAdapters(() => {
            throw new Error("inside");
          }),
        ).toThrow("inside");
        expect(model.decoder.adapters.active).toBe(true);
        expect(maxAbs(model.decoder.forward(ids).logits!, adapted)).toBe(0);
      });
    } finally {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
      for (const t of expected.values()) t.dispose();
    }
  });
});

describe("forward with adapters equals forward with merged weights", () => {
  let ids: Tensor;
  beforeAll(() => {
    manualSeed(11);
    ids = keep(loadSafetensors(join(QWEN2, "expected.safetensors"), { names: ["input_ids"] }).tensors.get("input_ids")!);
  });
  afterAll(() => ids.dispose());
  // Registered after the leak check: vitest runs after-hooks in reverse order, so this one runs first.
  useLeakCheck();
  const owned: { dispose(): void }[] = [];
  afterEach(() => {
    for (const o of owned.splice(0).reverse()) o.dispose();
  });

  const fresh = (): LoadedModel => {
    const m = loadModel(QWEN2);
    owned.push(m);
    return m;
  };

  it("merge gives the adapter's logits within 1e-5; unmerge restores the weights within 1e-6 and the adapter's logits", () => {
    const model = fresh();
    const original = new Map([...model.parameters].map(([name, w]) => [name, keep(w.clone())]));
    owned.push({ dispose: () => original.forEach((t) => t.dispose()) });
    const adapter = LoraAdapter.create(model.spec, { r: 4, alpha: 8, targetModules: ALL }, { initB: "random", name: "a" });
    owned.push(adapter);
    model.decoder.adapters.attach(adapter);
    const base = keep(model.decoder.adapters.withoutAdapters(() => model.decoder.forward(ids).logits!));
    const adapted = keep(model.decoder.forward(ids).logits!);
    owned.push(base, adapted);
    expect(maxAbs(adapted, base)).toBeGreaterThan(1e-3);

    adapter.merge(model.parameters);
    expect(adapter.merged).toBe(true);
    expect(model.decoder.adapters.active).toBe(false);
    tidy(() => {
      expect(maxAbs(model.decoder.forward(ids).logits!, adapted)).toBeLessThanOrEqual(1e-5);
      // The merged weight is W + (alpha / r) B A, computed here by hand.
      for (const module of ["model.layers.0.self_attn.k_proj", "model.layers.1.mlp.down_proj"]) {
        const { A, B } = adapter.modules.get(module)!;
        const want = original.get(`${module}.weight`)!.add(
          B.detach()
            .matmul(A.detach())
            .mul(8 / 4),
        );
        expect(maxAbs(model.parameters.get(`${module}.weight`)!, want)).toBeLessThanOrEqual(1e-6);
      }
      // Untargeted weights are untouched.
      expect(maxAbs(model.parameters.get("model.embed_tokens.weight")!, original.get("model.embed_tokens.weight")!)).toBe(0);
    });

    adapter.unmerge();
    expect(adapter.merged).toBe(false);
    expect(model.decoder.adapters.active).toBe(true);
    for (const [name, w] of model.parameters) expect(maxAbs(w, original.get(name)!), name).toBeLessThanOrEqual(1e-6);
    tidy(() => {
      expect(maxAbs(model.decoder.forward(ids).logits!, adapted)).toBeLessThanOrEqual(1e-5);
    });
  });

  it("merge, unmerge and delta (called outside any tidy) leave no tensors behind", () => {
    const model = fresh();
    const adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 2, targetModules: ["q_proj"] }, { initB: "random" });
    owned.push(adapter);
    const counts: number[] = [liveTensorCount()];
    adapter.merge(model.parameters);
    counts.push(liveTensorCount());
    adapter.unmerge();
    counts.push(liveTensorCount());
    adapter.delta("model.layers.0.self_attn.q_proj").dispose();
    counts.push(liveTensorCount());
    expect(counts).toEqual([counts[0], counts[0], counts[0], counts[0]]);
  });

  it("two adapters at once add up: A+B attached equals both updates merged by hand", () => {
    const model = fresh();
    const a = LoraAdapter.create(model.spec, { r: 4, alpha: 8, targetModules: ALL }, { initB: "random", name: "a" });
    const b = LoraAdapter.create(
      model.spec,
      { r: 2, alpha: 3, useRslora: true, targetModules: "model\\.layers\\.1\\.mlp\\.(up|down)_proj" },
      { initB: "random", name: "b" },
    );
    owned.push(a, b);
    expect([...b.modules.keys()]).toEqual(["model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"]);
    model.decoder.adapters.attach(a);
    const onlyA = keep(model.decoder.forward(ids).logits!);
    model.decoder.adapters.attach(b);
    const both = keep(model.decoder.forward(ids).logits!);
    owned.push(onlyA, both);
    expect(maxAbs(both, onlyA)).toBeGreaterThan(1e-4);
    model.decoder.adapters.detach(a);
    model.decoder.adapters.detach(b);

    const other = fresh();
    noGrad(() =>
      tidy(() => {
        for (const [adapter, scale] of [
          [a, 8 / 4],
          [b, 3 / Math.sqrt(2)],
        ] as const) {
          for (const [module, { A, B }] of adapter.modules) other.parameters.get(`${module}.weight`)!.add_(B.matmul(A).mul(scale));
        }
      }),
    );
    tidy(() => {
      expect(maxAbs(other.decoder.forward(ids).logits!, both)).toBeLessThanOrEqual(1e-5);
    });
  });

  it("nine rank-1 adapters at nine layers are created and attached together and add up", () => {
    const dir = join(work, "nine-layers");
    writeRandomModel(
      dir,
      {
        architectures: ["Qwen2ForCausalLM"],
        model_type: "qwen2",
        vocab_size: 96,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 9,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        rms_norm_eps: 1e-6,
        rope_theta: 10000,
        tie_word_embeddings: true,
      },
      { seed: 5 },
    );
    const model = loadModel(dir);
    const reference = loadModel(dir);
    owned.push(model, reference);
    const adapters = Array.from({ length: 9 }, (_, l) => {
      const adapter = LoraAdapter.create(
        model.spec,
        { r: 1, alpha: 2, targetModules: ["down_proj"], layersToTransform: [l] },
        { initB: "random", name: `layer${l}` },
      );
      owned.push(adapter);
      return adapter;
    });
    adapters.forEach((adapter, l) => {
      expect([...adapter.modules.keys()]).toEqual([`model.layers.${l}.mlp.down_proj`]);
      const m = adapter.modules.get(`model.layers.${l}.mlp.down_proj`)!;
      expect(m.A.shape).toEqual([1, 32]);
      expect(m.B.shape).toEqual([16, 1]);
      model.decoder.adapters.attach(adapter);
    });
    expect(model.decoder.adapters.size).toBe(9);
    expect(() => model.decoder.adapters.attach(adapters[3]!)).toThrow(RangeError);
    const inputIds = keep(tidy(() => randn([2, 10]).abs().mul(30).floor().clamp(0, 95).to("i64")));
    owned.push(inputIds);
    noGrad(() =>
      tidy(() => {
        adapters.forEach((adapter, l) => {
          const { A, B } = adapter.modules.get(`model.layers.${l}.mlp.down_proj`)!;
          reference.parameters.get(`model.layers.${l}.mlp.down_proj.weight`)!.add_(B.matmul(A).mul(2));
        });
      }),
    );
    tidy(() => {
      const got = model.decoder.forward(inputIds).logits!;
      const want = reference.decoder.forward(inputIds).logits!;
      expect(maxAbs(got, want)).toBeLessThanOrEqual(1e-5);
      const base = model.decoder.adapters.withoutAdapters(() => model.decoder.forward(inputIds).logits!);
      expect(maxAbs(got, base)).toBeGreaterThan(1e-4);
    });
    for (const adapter of adapters) model.decoder.adapters.detach(adapter);
  });
});

describe("targets, scale and initialisation", () => {
  it("isTarget: module-name suffixes at a '.' boundary, a regex string full-matches, layers_to_transform filters", () => {
    const q0 = "model.layers.0.self_attn.q_proj";
    const d1 = "model.layers.1.mlp.down_proj";
    const cfg = (targetModules: LoraConfig["targetModules"], layersToTransform: number[] | null = null): LoraConfig => ({
      r: 1,
      alpha: 1,
      targetModules,
      layersToTransform,
    });
    expect(isTarget(q0, cfg(["q_proj"]))).toBe(true);
    expect(isTarget(q0, cfg(["self_attn.q_proj"]))).toBe(true);
    expect(isTarget(q0, cfg([q0]))).toBe(true);
    expect(isTarget(q0, cfg(["proj"]))).toBe(false);
    expect(isTarget(q0, cfg(["_proj"]))).toBe(false);
    expect(isTarget(q0, cfg(["k_proj", "v_proj"]))).toBe(false);
    expect(isTarget("model.layers.0.self_attn.xq_proj", cfg(["q_proj"]))).toBe(false);
    // A string is a regex matched against the whole name.
    expect(isTarget(q0, cfg("q_proj"))).toBe(false);
    expect(isTarget(q0, cfg(".*q_proj"))).toBe(true);
    expect(isTarget(q0, cfg("model\\.layers\\.0"))).toBe(false);
    expect(isTarget(q0, cfg(".*\\.layers\\.0\\..*"))).toBe(true);
    expect(isTarget(d1, cfg(".*\\.layers\\.0\\..*"))).toBe(false);
    expect(isTarget(d1, cfg(".*(q|down)_proj"))).toBe(true);
    // layers_to_transform
    expect(isTarget(d1, cfg(["down_proj"], [1]))).toBe(true);
    expect(isTarget(d1, cfg(["down_proj"], [0, 2]))).toBe(false);
    expect(isTarget(q0, cfg(["q_proj"], [0]))).toBe(true);
    expect(isTarget(q0, cfg(["q_proj"], []))).toBe(true);
  });

  describe("with the qwen2 fixture", () => {
    let model: LoadedModel;
    beforeAll(() => {
      model = loadModel(QWEN2);
    });
    afterAll(() => model.dispose());
    useLeakCheck();

    it("created modules follow the targets and the linear shapes", () => {
      const adapter = LoraAdapter.create(model.spec, { r: 3, alpha: 1, targetModules: ["k_proj", "up_proj"], layersToTransform: [1] });
      try {
        expect([...adapter.modules.keys()].sort()).toEqual(["model.layers.1.mlp.up_proj", "model.layers.1.self_attn.k_proj"]);
        // qwen2 fixture: hidden 64, 4 heads of 16, 2 kv heads -> k_proj [32, 64]; up_proj [128, 64].
        expect(adapter.modules.get("model.layers.1.self_attn.k_proj")!.A.shape).toEqual([3, 64]);
        expect(adapter.modules.get("model.layers.1.self_attn.k_proj")!.B.shape).toEqual([32, 3]);
        expect(adapter.modules.get("model.layers.1.mlp.up_proj")!.B.shape).toEqual([128, 3]);
        expect(linearModules(model.spec).get("model.layers.0.mlp.down_proj")).toEqual([64, 128]);
        expect(adapter.parameters().length).toBe(4);
      } finally {
        adapter.dispose();
      }
      expect(() => LoraAdapter.create(model.spec, { r: 2, alpha: 1, targetModules: ["fc1"] })).toThrow(LoraConfigError);
    });

    it("scale is alpha / r, or alpha / sqrt(r) with rsLoRA; delta(module) = scale * B A", () => {
      const plain = LoraAdapter.create(model.spec, { r: 4, alpha: 8, targetModules: ["v_proj"] }, { initB: "random" });
      const rs = LoraAdapter.create(model.spec, { r: 4, alpha: 8, useRslora: true, targetModules: ["v_proj"] }, { initB: "random" });
      try {
        expect(plain.scale).toBe(2);
        expect(rs.scale).toBe(4);
        tidy(() => {
          const module = "model.layers.0.self_attn.v_proj";
          const { A, B } = rs.modules.get(module)!;
          const d = rs.delta(module);
          expect(d.shape).toEqual([32, 64]);
          // Entry (i, j) of 4 * B A from host values.
          const a = host(A);
          const b = host(B);
          const want = Array.from({ length: 32 * 64 }, (_, k) => {
            const i = Math.floor(k / 64);
            const j = k % 64;
            let s = 0;
            for (let t = 0; t < 4; t++) s += b[i * 4 + t]! * a[t * 64 + j]!;
            return 4 * s;
          });
          const got = host(d);
          expect(Math.max(...got.map((g, k) => Math.abs(g - want[k]!)))).toBeLessThanOrEqual(1e-6);
          expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(1e-2);
        });
      } finally {
        plain.dispose();
        rs.dispose();
      }
    });

    it("A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0 by default, both trainable; a fresh adapter leaves the logits unchanged", () => {
      manualSeed(3);
      const adapter = LoraAdapter.create(model.spec, { r: 8, alpha: 16, targetModules: ALL });
      const ids = loadSafetensors(join(QWEN2, "expected.safetensors"), { names: ["input_ids"] }).tensors.get("input_ids")!;
      try {
        expect(adapter.modules.size).toBe(14);
        for (const [module, { A, B }] of adapter.modules) {
          const inp = A.shape[1]!;
          const bound = 1 / Math.sqrt(inp);
          const a = host(A);
          expect(A.requiresGrad && B.requiresGrad, module).toBe(true);
          expect(Math.max(...a.map(Math.abs)), module).toBeLessThanOrEqual(bound);
          expect(Math.max(...a.map(Math.abs)), module).toBeGreaterThan(0.9 * bound);
          const mean = a.reduce((s, x) => s + x, 0) / a.length;
          const variance = a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length;
          expect(Math.abs(mean), module).toBeLessThan(0.15 * bound);
          // Uniform on [-b, b] has variance b^2 / 3 (PEFT's kaiming_uniform_(a=sqrt(5)) on [r, in]).
          expect(variance / ((bound * bound) / 3), module).toBeGreaterThan(0.8);
          expect(variance / ((bound * bound) / 3), module).toBeLessThan(1.2);
          expect(
            host(B).every((x) => x === 0),
            module,
          ).toBe(true);
        }
        // Different modules get different draws.
        const q = host(adapter.modules.get("model.layers.0.self_attn.q_proj")!.A);
        const k = host(adapter.modules.get("model.layers.0.self_attn.k_proj")!.A);
        expect(q).not.toEqual(k);
        tidy(() => {
          const base = model.decoder.forward(ids).logits!;
          model.decoder.adapters.attach(adapter);
          try {
            expect(model.decoder.adapters.active).toBe(true);
            expect(maxAbs(model.decoder.forward(ids).logits!, base)).toBe(0);
          } finally {
            model.decoder.adapters.detach(adapter);
          }
        });
      } finally {
        adapter.dispose();
        ids.dispose();
      }
    });
  });
});

describe("PEFT file format", () => {
  let model: LoadedModel;
  beforeAll(() => {
    model = loadModel(QWEN2);
  });
  afterAll(() => model.dispose());
  useLeakCheck();

  it("savePeftAdapter -> loadPeftAdapter is bit-identical, with PEFT's config keys and tensor names", () => {
    const dir = join(work, "saved");
    manualSeed(21);
    const adapter = LoraAdapter.create(
      model.spec,
      { r: 2, alpha: 5, useRslora: true, dropout: 0.05, targetModules: ["q_proj", "down_proj"], layersToTransform: [1] },
      { initB: "random", name: "mine" },
    );
    try {
      savePeftAdapter(dir, adapter, { baseModel: "tiny/qwen2" });
      const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      expect(config).toMatchObject({
        peft_type: "LORA",
        r: 2,
        lora_alpha: 5,
        use_rslora: true,
        lora_dropout: 0.05,
        target_modules: ["q_proj", "down_proj"],
        layers_to_transform: [1],
        bias: "none",
        use_dora: false,
        fan_in_fan_out: false,
        base_model_name_or_path: "tiny/qwen2",
      });
      const header = readSafetensorsHeader(join(dir, "adapter_model.safetensors"));
      expect([...header.entries.keys()].sort()).toEqual([
        "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
        "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight",
        "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
        "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
      ]);
      expect(header.entries.get("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight")!.shape).toEqual([2, 128]);
      expect(header.entries.get("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")!.shape).toEqual([64, 2]);

      const loaded = loadPeftAdapter(dir, model);
      try {
        expect(loaded.config).toEqual({
          r: 2,
          alpha: 5,
          useRslora: true,
          dropout: 0.05,
          targetModules: ["q_proj", "down_proj"],
          layersToTransform: [1],
        });
        expect([...loaded.modules.keys()].sort()).toEqual([...adapter.modules.keys()].sort());
        for (const [module, m] of adapter.modules) {
          const l = loaded.modules.get(module)!;
          expect(bytesOf(l.A).equals(bytesOf(m.A)), `${module} A`).toBe(true);
          expect(bytesOf(l.B).equals(bytesOf(m.B)), `${module} B`).toBe(true);
        }
      } finally {
        loaded.dispose();
      }
    } finally {
      adapter.dispose();
    }
  });

  it("a PEFT-made adapter saved again holds the same tensors bit for bit", () => {
    const source = join(ADAPTERS, "qwen2_lora_r4_all");
    const dir = join(work, "resaved");
    const adapter = loadPeftAdapter(source, model);
    const original = loadSafetensors(join(source, "adapter_model.safetensors")).tensors;
    try {
      savePeftAdapter(dir, adapter);
      const again = loadSafetensors(join(dir, "adapter_model.safetensors")).tensors;
      try {
        expect([...again.keys()].sort()).toEqual([...original.keys()].sort());
        for (const [name, t] of original) expect(bytesOf(again.get(name)!).equals(bytesOf(t)), name).toBe(true);
      } finally {
        for (const t of again.values()) t.dispose();
      }
      const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      expect(config.r).toBe(4);
      expect(config.lora_alpha).toBe(8);
      expect([...(config.target_modules as string[])].sort()).toEqual([...ALL].sort());
      expect(config.layers_to_transform).toBeNull();
    } finally {
      adapter.dispose();
      for (const t of original.values()) t.dispose();
    }
  });

  describe("AdapterError names the file", () => {
    const fixture = join(ADAPTERS, "qwen2_lora_r1_l1_down_rslora");
    const fixtureConfig = (): Record<string, unknown> =>
      JSON.parse(readFileSync(join(fixture, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    let n = 0;
    /** A copy of the rank-1 fixture with an optional config edit and replacement tensors. */
    const variant = (options: { config?: Record<string, unknown> | null; tensors?: Record<string, number[]> }): string => {
      const dir = join(work, `broken-${n++}`);
      mkdirSync(dir, { recursive: true });
      if (options.config !== null) writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(options.config ?? fixtureConfig()));
      if (options.tensors) {
        tidy(() =>
          saveSafetensors(
            join(dir, "adapter_model.safetensors"),
            Object.fromEntries(Object.entries(options.tensors!).map(([k, shape]) => [k, randn(shape)])),
            { format: "pt" },
          ),
        );
      } else {
        copyFileSync(join(fixture, "adapter_model.safetensors"), join(dir, "adapter_model.safetensors"));
      }
      return dir;
    };
    const expectFileError = (dir: string, file: string, problem: RegExp): void => {
      const error = thrown(() => loadPeftAdapter(dir, model), AdapterError);
      expect(error.file).toBe(join(dir, file));
      expect(error.message).toContain(join(dir, file));
      expect(error.message).toMatch(problem);
    };
    const key = (module: string, which: "A" | "B"): string => `base_model.model.${module}.lora_${which}.weight`;
    const down1 = "model.layers.1.mlp.down_proj";

    it("the unmodified copy loads (the variants below differ only in the broken part)", () => {
      const adapter = loadPeftAdapter(variant({}), model);
      expect(adapter.modules.size).toBe(1);
      adapter.dispose();
      const rebuilt = loadPeftAdapter(variant({ tensors: { [key(down1, "A")]: [1, 128], [key(down1, "B")]: [64, 1] } }), model);
      expect(rebuilt.modules.size).toBe(1);
      rebuilt.dispose();
    });

    it("missing adapter_config.json", () => {
      expectFileError(variant({ config: null }), "adapter_config.json", /cannot read/);
    });

    it("wrong tensor shape", () => {
      expectFileError(
        variant({ tensors: { [key(down1, "A")]: [1, 64], [key(down1, "B")]: [64, 1] } }),
        "adapter_model.safetensors",
        /shape \[1, 64\], expected \[1, 128\]/,
      );
      expectFileError(
        variant({ tensors: { [key(down1, "A")]: [1, 128], [key(down1, "B")]: [64, 2] } }),
        "adapter_model.safetensors",
        /expected \[64, 1\]/,
      );
    });

    it("unknown module", () => {
      expectFileError(
        variant({ tensors: { [key("model.layers.1.mlp.fc_in", "A")]: [1, 128], [key("model.layers.1.mlp.fc_in", "B")]: [64, 1] } }),
        "adapter_model.safetensors",
        /no linear module model\.layers\.1\.mlp\.fc_in/,
      );
      expectFileError(
        variant({ tensors: { [key("model.layers.7.mlp.down_proj", "A")]: [1, 128], [key("model.layers.7.mlp.down_proj", "B")]: [64, 1] } }),
        "adapter_model.safetensors",
        /no linear module model\.layers\.7\.mlp\.down_proj/,
      );
    });

    it("use_dora true", () => {
      expectFileError(variant({ config: { ...fixtureConfig(), use_dora: true } }), "adapter_config.json", /use_dora/);
    });

    it('bias "all"', () => {
      expectFileError(variant({ config: { ...fixtureConfig(), bias: "all" } }), "adapter_config.json", /bias "all"/);
    });
  });
});
