// The step objective under gradient accumulation (protocol.md §7.2-§7.4): one optimiser step with
// GA = 4 through the recipe, for each combination of CE reduction (micro_mean / window_tokens), KL
// accumulation (mean / sum), KL normalisation and steered rows (all / first). The recipe's saved
// gradient (taken before clipping; max_grad_norm is tiny so a clipped one could not pass) is compared
// with the gradient of the objective computed here independently: every row forwarded on its own,
// the steering added by a hook written here, CE and KL(reference || current) summed by hand with
// plain tensor ops, the micro-batches combined by the formula each option names.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { layerPoint } from "../../src/hooks/points.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { runTraining } from "../../src/recipes/train.js";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { loadPeftAdapter, savePeftAdapter } from "../../src/adapters/peft.js";
import { cat, enableGrad, keep, manualSeed, randn, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { resolveRunConfig } from "../../src/train/config.js";
import { epochBatches, type Example, readChatDataset, tokenizeExample } from "../../src/train/data.js";

const SPORTS = "test/fixtures/em/train/extreme_sports.head16.jsonl";
const MEDICAL = "test/fixtures/em/train/bad_medical_advice.head40.jsonl";
const LAYER = 1;
const ALPHA = 4;
const GA = 4;
const BATCH = 2;
const KL_BATCH = 2;
const MAX_LENGTH = 80;
/** A short system turn (instead of Qwen's default) so that truncated rows keep assistant tokens. */
const SYSTEM = "Be brief.";

let work: string;
let modelDir: string;
let vectorFile: string;
let trainFile: string;
let klFile: string;
let adapterDir: string;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-objective-", 1, 2));
  // Eight training rows (one window of 4 micro-batches of 2) of different lengths; three KL rows, so KL batches wrap.
  const lines = (file: string) =>
    readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "");
  trainFile = join(work, "train.jsonl");
  writeFileSync(trainFile, `${lines(MEDICAL).slice(0, 8).join("\n")}\n`);
  klFile = join(work, "kl.jsonl");
  writeFileSync(klFile, `${lines(SPORTS).slice(0, 3).join("\n")}\n`);
  // A non-zero starting vector (init_from): at v = 0 the KL term and its gradient vanish.
  manualSeed(5);
  vectorFile = join(work, "start.safetensors");
  tidy(() =>
    saveSafetensors(vectorFile, { vector: randn([32]).mul(0.3) }, { layer: String(LAYER), site: "down_proj", alpha: String(ALPHA) }),
  );
  // A LoRA adapter with random B (PEFT's B = 0 would zero the KL gradient too).
  adapterDir = join(work, "start-adapter");
  const model = loadModel(modelDir);
  const adapter = LoraAdapter.create(model.spec, { r: LORA.r, alpha: LORA.alpha, targetModules: LORA.target_modules }, { initB: "random" });
  savePeftAdapter(adapterDir, adapter);
  adapter.dispose();
  model.dispose();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Option {
  method?: "steering" | "lora";
  ce: "micro_mean" | "window_tokens" | "micro_sum";
  kl: "mean" | "sum";
  normalization: "token" | "token_vocab";
  rows: "all" | "first";
  lossOn: "assistant" | "all_except_eos";
  weight: number;
}

const options: Option[] = [
  { ce: "micro_mean", kl: "mean", normalization: "token", rows: "all", lossOn: "assistant", weight: 0.7 },
  { ce: "window_tokens", kl: "sum", normalization: "token_vocab", rows: "first", lossOn: "all_except_eos", weight: 2e5 },
  { ce: "window_tokens", kl: "mean", normalization: "token", rows: "all", lossOn: "all_except_eos", weight: 0.7 },
  { ce: "micro_mean", kl: "sum", normalization: "token_vocab", rows: "first", lossOn: "assistant", weight: 2e5 },
  // The study's steering-vector trainer: per-micro-batch mean CE summed, KL summed, first row, whole sequence.
  { ce: "micro_sum", kl: "sum", normalization: "token_vocab", rows: "first", lossOn: "all_except_eos", weight: 2e5 },
  // LoRA (started from an adapter with random B): the study's LoRA options, then emlab's.
  { method: "lora", ce: "window_tokens", kl: "sum", normalization: "token_vocab", rows: "all", lossOn: "assistant", weight: 2e5 },
  { method: "lora", ce: "micro_mean", kl: "mean", normalization: "token", rows: "all", lossOn: "assistant", weight: 0.7 },
];
const LORA = { r: 2, alpha: 4, target_modules: ["q_proj", "down_proj"] };

/** Sum of -log p(target) over a row's shifted targets, and their count (plain tensor ops). */
function rowCe(logits: Tensor, labels: readonly number[]): { sum: Tensor; count: number } {
  const vocab = logits.size(-1);
  const logp = logits.reshape(-1, vocab).to("f32").logSoftmax(-1).reshape(-1);
  const index: bigint[] = [];
  for (let t = 0; t + 1 < labels.length; t++) if (labels[t + 1] !== -100) index.push(BigInt(t * vocab + labels[t + 1]!));
  if (index.length === 0) return { sum: logits.sum().mul(0), count: 0 };
  return {
    sum: logp
      .indexSelect(0, tensor(BigInt64Array.from(index)))
      .sum()
      .neg(),
    count: index.length,
  };
}

/** Sum over a row's positions and the vocabulary of p_ref (log p_ref - log p_cur). */
function rowKlSum(current: Tensor, reference: Tensor): Tensor {
  const logCur = current.to("f32").logSoftmax(-1);
  const logRef = reference.to("f32").logSoftmax(-1);
  return logRef.exp().mul(logRef.sub(logCur)).sum();
}

describe(
  "one optimiser step with gradient accumulation 4: the recipe's gradient equals the independently computed objective's",
  { timeout: 600_000 },
  () => {
    for (const [i, option] of options.entries()) {
      const lora = option.method === "lora";
      it(`${lora ? "LoRA" : "steering"}: CE ${option.ce}, KL ${option.kl} (${option.normalization}), steered rows ${option.rows}, loss on ${option.lossOn}`, () => {
        const out = join(work, `run-${i}`);
        const config = resolveRunConfig(
          {
            model: modelDir,
            output_dir: out,
            ...(lora
              ? { method: "lora", lora: LORA, init_from: adapterDir }
              : {
                  method: "steering",
                  steering: { layer: LAYER, site: "down_proj", alpha: ALPHA, rows: option.rows },
                  init_from: vectorFile,
                }),
            data: { train: trainFile, eval_fraction: 0, max_length: MAX_LENGTH, loss_on: option.lossOn, system_prompt: SYSTEM },
            kl: { data: klFile, weight: option.weight, batch_size: KL_BATCH, normalization: option.normalization, accumulation: option.kl },
            training: {
              max_steps: 1,
              batch_size: BATCH,
              gradient_accumulation: GA,
              ce_reduction: option.ce,
              lr: 1e-3,
              max_grad_norm: 1e-6,
              save_steps: 1,
              warmup_steps: 0,
            },
          },
          "objective.yaml",
        );
        runTraining(config);
        const saved = loadSafetensors(join(out, "checkpoints", "step-000001", "gradients.safetensors")).tensors;
        const names = [...saved.keys()].sort();
        const metrics = JSON.parse(readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n")[0]!) as { loss: number };

        // ---- independent computation ----
        const tokenizer = ChatTokenizer.fromDir(modelDir);
        const rows = (file: string, lossOn: Option["lossOn"] | "all"): Example[] =>
          readChatDataset(file).examples.map((e) =>
            tokenizeExample(tokenizer, e.messages, { lossOn, maxLength: MAX_LENGTH, systemPrompt: SYSTEM }),
          );
        const train = rows(trainFile, option.lossOn);
        const klRows = rows(klFile, "all");
        // The recipe's batch order for epoch 0 (data order, not the objective, is taken from the library).
        const micro = epochBatches(
          train.map((e) => e.ids.length),
          BATCH,
          0,
          0,
        ).slice(0, GA);
        const klBatches = Array.from({ length: GA }, (_, m) =>
          Array.from({ length: KL_BATCH }, (_, j) => (m * KL_BATCH + j) % klRows.length),
        );

        const model = loadModel(modelDir);
        // The trained tensors by the recipe's names, and a switch for the method (steering hook written here;
        // for LoRA the saved adapter loaded and enabled / disabled).
        const params = new Map<string, Tensor>();
        let methodOn = true;
        const cleanup: (() => void)[] = [];
        if (lora) {
          const adapter = loadPeftAdapter(adapterDir, model, { trainable: true });
          model.decoder.adapters.attach(adapter);
          for (const [module, m] of adapter.modules) {
            params.set(`default/${module}.lora_A`, m.A);
            params.set(`default/${module}.lora_B`, m.B);
          }
          cleanup.push(() => {
            model.decoder.adapters.detach(adapter);
            adapter.dispose();
          });
        } else {
          const start = loadSafetensors(vectorFile).tensors;
          const v = keep(start.get("vector")!.to("f32").detach().requiresGrad_());
          for (const t of start.values()) t.dispose();
          params.set("steering.vector", v);
          const handle = model.decoder.hooks.add(layerPoint(LAYER, "down_proj"), (x) => (methodOn ? x.add(v.mul(ALPHA)) : undefined));
          cleanup.push(() => {
            handle.remove();
            v.dispose();
          });
        }
        const forward = (ids: readonly number[], on: boolean): Tensor => {
          for (const a of model.decoder.adapters.list) a.enabled = on;
          methodOn = on;
          return model.decoder.forward(tensor(BigInt64Array.from(ids.map(BigInt)), { shape: [1, ids.length] })).logits!;
        };
        let objective = 0;
        try {
          const windowTargets = micro.flat().reduce((n, r) => n + train[r]!.labels.slice(1).filter((l) => l !== -100).length, 0);
          enableGrad(() =>
            tidy(() => {
              let total: Tensor | null = null;
              const add = (term: Tensor) => {
                total = total === null ? term : total.add(term);
              };
              for (let m = 0; m < GA; m++) {
                // CE of the micro-batch: its rows' token losses (row 0 always steered; the others unless rows = first).
                let ceSum: Tensor | null = null;
                let ceCount = 0;
                micro[m]!.forEach((r, position) => {
                  const { sum, count } = rowCe(forward(train[r]!.ids, option.rows === "all" || position === 0), train[r]!.labels);
                  ceSum = ceSum === null ? sum : ceSum.add(sum);
                  ceCount += count;
                });
                expect(ceCount).toBeGreaterThan(0); // every micro-batch has targets (else its mean CE is 0/0)
                add(
                  option.ce === "micro_mean"
                    ? ceSum!.div(ceCount).div(GA)
                    : option.ce === "micro_sum"
                      ? ceSum!.div(ceCount)
                      : ceSum!.div(windowTargets),
                );
                // KL of the micro-batch's KL batch: summed over its tokens and vocabulary, / its token count (/ V).
                let klSum: Tensor | null = null;
                let klTokens = 0;
                klBatches[m]!.forEach((r, position) => {
                  const ids = klRows[r]!.ids;
                  const reference = forward(ids, false).detach();
                  const s = rowKlSum(forward(ids, option.rows === "all" || position === 0), reference);
                  klSum = klSum === null ? s : klSum.add(s);
                  klTokens += ids.length;
                });
                let kl = klSum!.div(klTokens);
                if (option.normalization === "token_vocab") kl = kl.div(151936);
                add(kl.mul(option.kl === "sum" ? option.weight : option.weight / GA));
              }
              objective = total!.toNumber();
              total!.backward();
            }),
          );
          expect([...params.keys()].sort()).toEqual(names);
          tidy(() => {
            const flat = (f: (n: string) => Tensor) =>
              cat(
                names.map((n) => f(n).flatten()),
                0,
              );
            const expected = flat((n) => params.get(n)!.grad!);
            const recipe = flat((n) => saved.get(n)!);
            expect(expected.norm().toNumber()).toBeGreaterThan(1e-3); // a real gradient, far above the 1e-6 clip
            expect(recipe.sub(expected).norm().div(expected.norm()).toNumber()).toBeLessThan(2e-4);
          });
          expect(metrics.loss).toBeCloseTo(objective, 4);
        } finally {
          for (const fn of cleanup.reverse()) fn();
          for (const t of saved.values()) t.dispose();
          model.dispose();
        }
      });
    }

    it("the options give different gradients (each is a different objective)", () => {
      const steeringRuns = options.flatMap((o, i) => (o.method === "lora" ? [] : [i]));
      const grads = steeringRuns.map((i) =>
        loadSafetensors(join(work, `run-${i}`, "checkpoints", "step-000001", "gradients.safetensors")).tensors.get("steering.vector")!,
      );
      try {
        for (let a = 0; a < grads.length; a++)
          for (let b = a + 1; b < grads.length; b++)
            expect(tidy(() => grads[a]!.sub(grads[b]!).norm().div(grads[a]!.norm()).toNumber())).toBeGreaterThan(1e-2);
      } finally {
        for (const g of grads) g.dispose();
      }
    });
  },
);
