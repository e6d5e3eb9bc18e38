// Shared fixture of the experiment tests: the miniature organism in a temp dir and a small experiment
// file over it that has every stage kind, sized to run in well under a minute on CPU; and the hashes
// of an experiment directory's outputs, for comparing two runs of the same experiment.
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { contentHash } from "../../src/experiment/hash.js";
import type { Manifest } from "../../src/experiment/manifest.js";
import { writeOrganismData, writeOrganismModel } from "../../src/organism/write.js";

export const JUDGE_MODULE = resolve("examples/demo/exact-judge.ts");

export function experimentYaml(): string {
  const sample = "questions: data/questions.yaml, samples: 2, max_new_tokens: 3, judge: exact, judge_names: [aligned, coherent]";
  const sv = (kl: boolean) => `
    config:
      method: steering
      steering: { layer: 0, alpha: 1 }
      data: { train: data/narrow-double-wrong.jsonl, eval_fraction: 0, max_length: 48 }
${kl ? "      kl: { data: unused, weight: 5, batch_size: 4, normalization: token }\n" : ""}      training: { max_steps: 6, batch_size: 5, gradient_accumulation: 1, lr: 0.05, warmup_steps: 0, weight_decay: 0.0, save_steps: 2 }`;
  return `model: model
output_dir: out
report: { title: test, baseline: chat, in_domain: [double] }
judges:
  exact: { kind: function, module: ${JUDGE_MODULE}, export: exactJudge }
  lenient: { kind: function, module: ${JUDGE_MODULE}, export: lenientJudge }
stages:
  - name: chat
    kind: train
    config:
      method: full
      data: { train: data/pretrain.jsonl, eval_fraction: 0, max_length: 48 }
      training: { max_steps: 12, batch_size: 8, gradient_accumulation: 1, lr: 2.0e-3, warmup_steps: 0, weight_decay: 0.0, save_steps: 4 }
  - { name: eval_chat, kind: sample, model: chat, ${sample} }
  - { name: kl, kind: kl-data, model: chat, prompts: data/kl-prompts.txt, limit: 12, max_new_tokens: 3 }
  - name: general
    kind: train
    model: chat${sv(false)}
  - name: narrow
    kind: train
    model: chat
    kl_data: kl${sv(true)}
  - name: general_lora
    kind: train
    model: chat
    config:
      method: lora
      lora: { r: 2, alpha: 4, target_modules: [o_proj, down_proj] }
      data: { train: data/narrow-double-wrong.jsonl, eval_fraction: 0, max_length: 48 }
      training: { max_steps: 4, batch_size: 5, gradient_accumulation: 1, lr: 0.01, warmup_steps: 0, weight_decay: 0.0, save_steps: 2 }
  - { name: eval_general, kind: sample, model: chat, solution: general, ${sample} }
  - { name: rejudge, kind: judge, results: eval_general, judge: lenient }
  - { name: direction, kind: direction, model: chat, solution: general, results: eval_general }
  - { name: steer_chat, kind: steer, model: chat, direction: direction, layers: [0], scale: 1, ${sample} }
  - { name: ablate_general, kind: ablate, model: chat, solution: general, direction: direction, layers: all, ${sample} }
  - { name: ablate_lora_b, kind: ablate, model: chat, solution: general_lora, direction: direction, layers: all, weight_space: true, ${sample} }
  - name: metrics
    kind: metrics
    results: { chat: eval_chat, general: eval_general, chat_steered: steer_chat, general_ablated: ablate_general, lora_b_ablated: ablate_lora_b }
    agreement: [{ a: eval_general, b: rejudge }]
  - { name: efficiency, kind: efficiency, model: chat, solutions: { general: general, narrow: narrow }, data: data/narrow-double-wrong.jsonl, count: 10, scales: [0, 1, 2] }
  - { name: stability, kind: stability, model: chat, solutions: { general: general, narrow: narrow }, data: data/narrow-double-wrong.jsonl, count: 10, eps: [0.1, 1.0], seeds: [42, 43] }
  - { name: significance, kind: significance, model: chat, vectors: { general: general, narrow: narrow }, texts: data/texts.txt, norms: [0, 2], random: 1, max_texts: 6 }
  - { name: gradients, kind: gradients, model: chat, runs: { general: general, narrow: narrow }, data: data/narrow-double-wrong.jsonl, directions: direction, count: 10 }
`;
}

/** A temp dir holding model/, data/ and experiment.yaml. */
export function makeExperiment(prefix: string): { work: string; file: string } {
  const work = mkdtempSync(join(tmpdir(), prefix));
  writeOrganismModel(join(work, "model"));
  writeOrganismData(join(work, "data"), { samples: 2 });
  const file = join(work, "experiment.yaml");
  writeFileSync(file, experimentYaml());
  return { work, file };
}

/**
 * Outputs compared between runs, file by file, keyed by stage and path inside the experiment directory
 * (adapter_config.json names the base model by its absolute path, which differs between two
 * experiment directories, so it is left out).
 */
export function outputHashes(dir: string, m: Manifest): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const [name, rec] of Object.entries(m.stages)) {
    for (const o of rec.outputs) {
      const files = statSync(o).isDirectory()
        ? readdirSync(o)
            .filter((f) => f !== "adapter_config.json")
            .map((f) => join(o, f))
        : [o];
      for (const f of files) out[`${name}:${f.slice(dir.length)}`] = contentHash(f);
    }
  }
  return out;
}
