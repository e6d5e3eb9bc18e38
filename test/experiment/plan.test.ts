// Experiment files to plans, in-process: JSON files decode like YAML, --model replaces the base model of the
// stages that do not name a trained model, references must exist and be of the right kind, cycles are errors,
// the order puts every stage after its inputs, and each stage's key changes with its settings and its inputs'
// contents (and only then).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { planExperiment } from "../../src/experiment/plan.js";
import { stageKey } from "../../src/experiment/run.js";
import { decodeExperiment, readExperiment } from "../../src/experiment/schema.js";

const base = (stages: unknown[]) => ({ model: "m", stages });
const train = (name: string, method: "full" | "lora" | "steering", extra: object = {}) => ({
  name,
  kind: "train",
  config: {
    method,
    ...(method === "lora"
      ? { lora: { r: 1, alpha: 1, target_modules: ["down_proj"] } }
      : method === "steering"
        ? { steering: { layer: 0 } }
        : {}),
    data: { train: "d.jsonl" },
  },
  ...extra,
});

describe("experiment plans", () => {
  it("reads JSON, resolves --model, orders by dependency and fixes outputs", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-plan-"));
    const file = join(dir, "e.json");
    writeFileSync(
      file,
      JSON.stringify(
        base([
          { name: "eval", kind: "sample", model: "chat", solution: "adapter", questions: "q.yaml" },
          train("adapter", "lora", { model: "chat" }),
          train("chat", "full"),
        ]),
      ),
    );
    const plan = planExperiment(readExperiment(file), { model: join(dir, "other") });
    expect(plan.stages.map((s) => s.stage.name)).toEqual(["chat", "adapter", "eval"]);
    const [chat, adapter, evaluation] = plan.stages;
    expect(chat!.runConfig!.model).toBe(join(dir, "other"));
    expect(adapter!.runConfig!.model).toBe(join(dir, "runs", "e", "stages", "chat", "run", "model"));
    expect(evaluation!.inputs.solution!.path).toBe(join(dir, "runs", "e", "stages", "adapter", "run", "adapter"));
    expect(evaluation!.baseModel).toBe(chat!.output);
    expect(plan.warnings.some((w) => w.includes("q.yaml does not exist"))).toBe(true);
  });

  it("init_from names an earlier LoRA or steering train stage: the continued run starts from its artefact and depends on it", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-plan-"));
    const file = join(dir, "e.json");
    writeFileSync(
      file,
      JSON.stringify(base([train("narrow", "steering"), train("continued", "steering", { init_from: "narrow" }), train("full", "full")])),
    );
    const plan = planExperiment(readExperiment(file));
    const continued = plan.stages.find((s) => s.stage.name === "continued")!;
    const artefact = join(dir, "runs", "e", "stages", "narrow", "run", "steering_vector.safetensors");
    expect(continued.runConfig!.init_from).toBe(artefact);
    expect(continued.inputs.init_from).toEqual({ path: artefact, stage: "narrow" });
    expect(plan.stages.map((s) => s.stage.name).indexOf("narrow")).toBeLessThan(plan.stages.map((s) => s.stage.name).indexOf("continued"));
    expect(() =>
      planExperiment(decodeExperiment(base([train("full", "full"), train("c", "lora", { init_from: "full" })]), "x.yaml")),
    ).toThrow(/stages\[1\]\.init_from: full is a train \(full\) stage/);
    expect(() =>
      planExperiment(decodeExperiment(base([train("c", "lora", { init_from: "later" }), train("later", "lora")]), "x.yaml")),
    ).toThrow(/stages\[0\]\.init_from: later must be a train stage listed before c/);
  });

  it("rejects wrong-kind references, unknown judges and cycles, naming the field", () => {
    const f = "x.yaml";
    expect(() =>
      planExperiment(decodeExperiment(base([train("sv", "steering"), { name: "e", kind: "sample", model: "sv", questions: "q" }]), f)),
    ).toThrow(/x\.yaml: stages\[1\]\.model: sv is a train \(steering\) stage; expected a full-SFT train stage/);
    expect(() => decodeExperiment(base([{ name: "e", kind: "sample", questions: "q", judge: "gpt" }]), f)).toThrow(
      /stages\[0\]\.judge: no judge named gpt/,
    );
    expect(() => decodeExperiment(base([{ name: "e", kind: "sample" }]), f)).toThrow(/stages\[0\]/);
    expect(() => decodeExperiment(base([{ name: "e", kind: "nope" }]), f)).toThrow(/stages\[0\]\.kind: expected one of/);
    expect(() => decodeExperiment(base([train("a", "full"), train("a", "full")]), f)).toThrow(/duplicate stage name a/);
    const judges = { j: { kind: "function", module: "j.ts" } };
    expect(() =>
      planExperiment(
        decodeExperiment(
          {
            ...base([
              { name: "a", kind: "judge", results: "b", judge: "j" },
              { name: "b", kind: "judge", results: "a", judge: "j" },
            ]),
            judges,
          },
          f,
        ),
      ),
    ).toThrow(/circular references among a, b/);
  });

  it("changes a stage's key with its settings or its inputs' contents, and only then", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-plan-"));
    writeFileSync(join(dir, "q.yaml"), "- id: a\n  paraphrases: [hi]\n");
    const experiment = (samples: number) =>
      decodeExperiment(base([{ name: "e", kind: "sample", questions: "q.yaml", samples }]), join(dir, "e.yaml"));
    const key = (samples: number) => stageKey(planExperiment(experiment(samples)).stages[0]!).key;
    const first = key(2);
    expect(key(2)).toBe(first);
    expect(key(3)).not.toBe(first);
    writeFileSync(join(dir, "q.yaml"), "- id: a\n  paraphrases: [hello]\n");
    expect(key(2)).not.toBe(first);
  });
});
