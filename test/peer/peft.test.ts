// PEFT both ways, live (peer environment): adapters created by Python PEFT with every option emlab
// supports load in emlab with equal logits (options it does not support are typed errors), and
// adapters trained and saved by emlab (rsLoRA, layers_to_transform, rank 1, target regex, several
// adapters at once, an ablated adapter) load in PEFT with equal logits.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdapterError, loadPeftAdapter, savePeftAdapter } from "../../src/adapters/peft.js";
import { LoraAdapter, type LoraConfig } from "../../src/adapters/lora.js";
import { ablateLoraB } from "../../src/analysis/interventions.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { causalLmLoss } from "../../src/nn/losses.js";
import { AdamW } from "../../src/optim/adamw.js";
import { manualSeed, randn, type Tensor, tidy } from "../../src/tensor/index.js";
import { peerUnavailable, peerWorkDir, runReference } from "./peer-env.js";

const unavailable = peerUnavailable();
const TOL = 1e-4;

// Base models: Qwen2-like (GQA, q/k/v bias, tied) and Llama-like (llama3 RoPE, untied, head_dim != hidden/heads).
const BASES = {
  qwen2: {
    model_type: "qwen2",
    vocab_size: 256,
    hidden_size: 48,
    intermediate_size: 96,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    pad_token_id: 0,
    rope_parameters: { rope_type: "default", rope_theta: 1000000 },
  },
  llama: {
    model_type: "llama",
    vocab_size: 256,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 16,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    pad_token_id: 0,
    rope_parameters: {
      rope_type: "llama3",
      rope_theta: 500000,
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  },
} as const;
type Base = keyof typeof BASES;

const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
// PEFT LoraConfig keyword arguments of every option emlab reads.
const PEFT_MADE: { name: string; base: Base; lora: Record<string, unknown> }[] = [
  { name: "r4-all", base: "qwen2", lora: { r: 4, lora_alpha: 8, target_modules: ALL } },
  { name: "all-linear", base: "llama", lora: { r: 2, lora_alpha: 16, target_modules: "all-linear" } },
  {
    name: "r1-rslora-layer1-down",
    base: "qwen2",
    lora: { r: 1, lora_alpha: 4, use_rslora: true, target_modules: ["down_proj"], layers_to_transform: [1] },
  },
  { name: "layers-int", base: "llama", lora: { r: 3, lora_alpha: 3, target_modules: ["q_proj", "v_proj"], layers_to_transform: 0 } },
  {
    name: "regex",
    base: "qwen2",
    lora: { r: 8, lora_alpha: 4, target_modules: String.raw`.*\.layers\.(0|2)\.(self_attn\.(k|o)_proj|mlp\.up_proj)` },
  },
  { name: "rslora-r16", base: "llama", lora: { r: 16, lora_alpha: 32, use_rslora: true, target_modules: ["o_proj", "gate_proj"] } },
];
// Options emlab refuses with a typed error naming the option.
const PEFT_REFUSED: { name: string; lora: Record<string, unknown>; error: RegExp }[] = [
  {
    name: "rank-pattern",
    lora: { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"], rank_pattern: { "model.layers.0.self_attn.q_proj": 2 } },
    error: /rank_pattern/,
  },
  { name: "dora", lora: { r: 4, lora_alpha: 8, target_modules: ["q_proj"], use_dora: true }, error: /use_dora/ },
];

// emlab-made adapters (trained a few AdamW steps here), each case a list of adapters attached together.
const EMLAB_MADE: { name: string; base: Base; adapters: { name: string; config: LoraConfig }[]; ablate?: boolean }[] = [
  { name: "rslora-all", base: "qwen2", adapters: [{ name: "default", config: { r: 8, alpha: 16, useRslora: true, targetModules: ALL } }] },
  {
    name: "layers-to-transform",
    base: "llama",
    adapters: [{ name: "default", config: { r: 4, alpha: 8, targetModules: ["q_proj", "down_proj"], layersToTransform: [1] } }],
  },
  { name: "rank-1", base: "qwen2", adapters: [{ name: "default", config: { r: 1, alpha: 2, targetModules: ["v_proj", "up_proj"] } }] },
  {
    name: "regex",
    base: "llama",
    adapters: [
      { name: "default", config: { r: 2, alpha: 4, targetModules: String.raw`.*\.layers\.1\.(self_attn\.q_proj|mlp\.(gate|down)_proj)` } },
    ],
  },
  {
    name: "two-adapters",
    base: "qwen2",
    adapters: [
      { name: "first", config: { r: 4, alpha: 4, targetModules: ["q_proj", "o_proj"] } },
      { name: "second", config: { r: 2, alpha: 8, useRslora: true, targetModules: ["down_proj", "k_proj"], layersToTransform: [0, 2] } },
    ],
  },
  {
    name: "ablated",
    base: "qwen2",
    adapters: [{ name: "default", config: { r: 4, alpha: 8, targetModules: ["o_proj", "down_proj", "q_proj"] } }],
    ablate: true,
  },
];

const maxAbs = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().toNumber());

describe.skipIf(unavailable !== null)("PEFT both ways (live)", () => {
  const work = unavailable ? "" : peerWorkDir("peft");
  const baseDir = (base: Base) => join(work, `base-${base}`);
  const models = new Map<Base, LoadedModel>();
  beforeAll(() => {
    runReference(
      [
        ...Object.entries(BASES).map(([name, config], i) => ({ kind: "model" as const, dir: baseDir(name as Base), config, seed: 40 + i })),
        ...PEFT_MADE.map((c, i) => ({
          kind: "peft_create" as const,
          base: baseDir(c.base),
          dir: join(work, `peft-${c.name}`),
          lora: c.lora,
          seed: 60 + i,
        })),
        ...PEFT_REFUSED.map((c, i) => ({
          kind: "peft_create" as const,
          base: baseDir("qwen2"),
          dir: join(work, `refused-${c.name}`),
          lora: c.lora,
          seed: 80 + i,
        })),
      ],
      work,
    );
    for (const base of Object.keys(BASES) as Base[]) models.set(base, loadModel(baseDir(base)));
  }, 900_000);
  afterAll(() => {
    for (const m of models.values()) m.dispose();
  });

  const inputIds = (base: Base): Tensor => loadSafetensors(join(baseDir(base), "expected.safetensors")).tensors.get("input_ids")!;

  for (const c of PEFT_MADE) {
    it(`PEFT-made ${c.name} (${JSON.stringify(c.lora)}) loads in emlab with equal logits`, () => {
      const model = models.get(c.base)!;
      const dir = join(work, `peft-${c.name}`);
      const adapter = loadPeftAdapter(dir, model);
      const { tensors } = loadSafetensors(join(dir, "expected.safetensors"));
      model.decoder.adapters.attach(adapter);
      try {
        const err = tidy(() => maxAbs(model.decoder.forward(tensors.get("input_ids")!).logits!, tensors.get("logits")!));
        // The adapter really changes the output (else equality would prove nothing).
        const change = tidy(() =>
          maxAbs(
            model.decoder.adapters.withoutAdapters(() => model.decoder.forward(tensors.get("input_ids")!).logits!),
            tensors.get("logits")!,
          ),
        );
        expect(change).toBeGreaterThan(100 * TOL);
        expect(err).toBeLessThanOrEqual(TOL);
        console.log(`PEFT -> emlab ${c.name}: max |logit diff| ${err.toExponential(2)} (adapter effect ${change.toExponential(2)})`);
      } finally {
        model.decoder.adapters.detach(adapter);
        for (const m of adapter.modules.values()) {
          m.A.dispose();
          m.B.dispose();
        }
        for (const t of tensors.values()) t.dispose();
      }
    });
  }

  for (const c of PEFT_REFUSED) {
    it(`PEFT-made ${c.name} is refused with a typed error naming the option`, () => {
      const model = models.get("qwen2")!;
      expect(() => loadPeftAdapter(join(work, `refused-${c.name}`), model)).toThrow(AdapterError);
      expect(() => loadPeftAdapter(join(work, `refused-${c.name}`), model)).toThrow(c.error);
    });
  }

  it("emlab-trained adapters load in PEFT with equal logits", () => {
    const tasks: Parameters<typeof runReference>[0][number][] = [];
    const ours = new Map<string, Tensor>();
    manualSeed(7);
    for (const c of EMLAB_MADE) {
      const model = models.get(c.base)!;
      const ids = inputIds(c.base);
      const adapters = c.adapters.map((a) => LoraAdapter.create(model.spec, a.config, { name: a.name, initB: "random" }));
      for (const a of adapters) model.decoder.adapters.attach(a);
      try {
        const optimizer = new AdamW(
          adapters.flatMap((a) => a.parameters()),
          { lr: 1e-2 },
        );
        for (let step = 0; step < 3; step++) {
          tidy(() => causalLmLoss(model.decoder.forward(ids).logits!, ids).backward());
          optimizer.step();
          optimizer.zeroGrad();
        }
        if (c.ablate) {
          const direction = tidy(() => randn([model.spec.hiddenSize]));
          expect(ablateLoraB(adapters[0]!, direction)).toBeGreaterThan(0);
          direction.dispose();
        }
        ours.set(
          c.name,
          tidy(() => model.decoder.forward(ids).logits!),
        );
        // The trained adapters really change the output (else equality would prove nothing).
        const change = tidy(() =>
          maxAbs(
            model.decoder.adapters.withoutAdapters(() => model.decoder.forward(ids).logits!),
            ours.get(c.name)!,
          ),
        );
        expect(change, `${c.name} adapter effect`).toBeGreaterThan(100 * TOL);
        const entries = adapters.map((a) => {
          const dir = join(work, `emlab-${c.name}-${a.name}`);
          savePeftAdapter(dir, a);
          return { name: a.name, dir };
        });
        saveSafetensors(join(work, `ids-${c.name}.safetensors`), { input_ids: ids });
        tasks.push({
          kind: "peft_load",
          base: baseDir(c.base),
          adapters: entries,
          ids: join(work, `ids-${c.name}.safetensors`),
          out: join(work, `peft-logits-${c.name}.safetensors`),
        });
      } finally {
        for (const a of adapters) {
          model.decoder.adapters.detach(a);
          for (const t of a.parameters()) t.dispose();
        }
        ids.dispose();
      }
    }
    runReference(tasks, work);
    for (const c of EMLAB_MADE) {
      const { tensors } = loadSafetensors(join(work, `peft-logits-${c.name}.safetensors`));
      const err = maxAbs(ours.get(c.name)!, tensors.get("logits")!);
      console.log(`emlab -> PEFT ${c.name}: max |logit diff| ${err.toExponential(2)}`);
      expect(err, c.name).toBeLessThanOrEqual(TOL);
      for (const t of tensors.values()) t.dispose();
      ours.get(c.name)!.dispose();
    }
  }, 900_000);
});

if (unavailable) it.skip(`PEFT peer tests skipped: ${unavailable}`, () => {});
