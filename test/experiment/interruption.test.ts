// The experiment program in-process, interrupted from outside its fiber (what the CLI's runtime does on
// SIGINT / SIGTERM): once inside the training stage after a step, once inside the sampling stage after
// a chunk. Each time the program ends interrupted, the stage keeps what it finished (the checkpoint of
// the step reached; the rows sampled), the manifest records it as interrupted, and the live tensor count
// is back at its baseline (the model, adapters, optimizer and sampling model were released). Running
// the program again completes with the uninterrupted run's outputs. kl-data stopped after some answers
// keeps them and the rerun appends the rest; an analysis stage (stability) stopped between two solutions
// keeps nothing, frees its model, and runs again on the rerun.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cause, Effect, Exit } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResultsFile } from "../../src/eval/results.js";
import type { Manifest } from "../../src/experiment/manifest.js";
import { planExperiment } from "../../src/experiment/plan.js";
import { type ExperimentEvent, experimentProgram, runExperiment } from "../../src/experiment/run.js";
import { readExperiment } from "../../src/experiment/schema.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { makeExperiment, outputHashes } from "./fixture.js";

let work = "";

const yaml = (out: string) => `model: model
output_dir: ${out}
stages:
  - name: tuned
    kind: train
    config:
      method: lora
      lora: { r: 2, alpha: 4, target_modules: [o_proj, down_proj] }
      data: { train: data/narrow-double-wrong.jsonl, eval_fraction: 0, max_length: 48 }
      training: { max_steps: 6, batch_size: 5, gradient_accumulation: 1, lr: 0.01, warmup_steps: 0, weight_decay: 0.0, save_steps: 1000 }
  - { name: eval_tuned, kind: sample, solution: tuned, questions: data/questions.yaml, samples: 2, max_new_tokens: 3, chunk_size: 1 }
`;

const planFor = (name: string) => {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, yaml(name));
  return planExperiment(readExperiment(file));
};
const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Manifest;

/** Runs the program and interrupts it (from outside its fiber) at the first event `stopAt` accepts. */
function interruptedAt(plan: ReturnType<typeof planFor>, stopAt: (e: ExperimentEvent) => boolean): Promise<Exit.Exit<unknown, unknown>> {
  return new Promise((resolve) => {
    let stopping = false;
    const fiber = Effect.runFork(
      experimentProgram(plan, {
        onEvent: (e) => {
          if (!stopping && stopAt(e)) {
            stopping = true;
            setImmediate(() => fiber.interruptUnsafe());
          }
        },
      }),
    );
    fiber.addObserver(resolve);
  });
}

beforeAll(() => {
  ({ work } = makeExperiment("emlab-exp-interrupt-"));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("experimentProgram interrupted", () => {
  it("inside training and inside sampling keeps the checkpoint and the rows, frees everything, and resumes to the same outputs", async () => {
    const reference = planFor("reference");
    const straight = await runExperiment(reference);
    expect(straight.ok).toBe(true);
    const totalRows = ResultsFile.read(join(reference.dir, "stages", "eval_tuned", "results.jsonl")).rows.length;

    const plan = planFor("stopped");
    const baseline = liveTensorCount();
    const inTraining = await interruptedAt(plan, (e) => e.type === "progress" && e.label === "train" && e.done >= 1);
    expect(Exit.isFailure(inTraining) && Cause.hasInterruptsOnly(inTraining.cause)).toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    expect(manifestOf(plan.dir).stages.tuned!.status).toBe("interrupted");
    const checkpoints = join(plan.dir, "stages", "tuned", "run", "checkpoints");
    const written = readdirSync(checkpoints);
    expect(written).toHaveLength(1);
    const step = Number(written[0]!.replace("step-", ""));
    expect(step).toBeGreaterThanOrEqual(1);
    expect(step).toBeLessThan(6);

    const inSampling = await interruptedAt(plan, (e) => e.type === "progress" && e.label === "sample" && e.done >= 2);
    expect(Exit.isFailure(inSampling) && Cause.hasInterruptsOnly(inSampling.cause)).toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    const manifest = manifestOf(plan.dir);
    expect(manifest.stages.tuned!.status).toBe("complete");
    expect(manifest.stages.eval_tuned!.status).toBe("interrupted");
    const kept = ResultsFile.read(join(plan.dir, "stages", "eval_tuned", "results.jsonl")).rows.length;
    expect(kept).toBeGreaterThanOrEqual(2);
    expect(kept).toBeLessThan(totalRows);

    const rest = await runExperiment(plan);
    expect(rest.ok).toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    const hashes = outputHashes(plan.dir, manifestOf(plan.dir));
    const expected = outputHashes(reference.dir, manifestOf(reference.dir));
    for (const key of Object.keys(expected).filter((k) => !k.endsWith("metrics.jsonl"))) expect(hashes[key], key).toBe(expected[key]);
    expect(existsSync(join(plan.dir, "stages", "tuned", "run", "adapter"))).toBe(true);
  }, 300_000);

  it("inside kl-data (answers kept) and inside an analysis stage (stability, between two solutions: nothing kept); everything freed, the rerun completes both", async () => {
    const plan = planExperiment(readExperiment(join(work, "experiment.yaml")));
    const baseline = liveTensorCount();
    // kl-data stopped after some answers: those lines are kept, and the rerun appends the rest after them.
    const klFile = join(plan.dir, "stages", "kl", "kl.jsonl");
    const inKl = await interruptedAt(plan, (e) => e.type === "progress" && e.stage === "kl" && e.done >= 3);
    expect(Exit.isFailure(inKl) && Cause.hasInterruptsOnly(inKl.cause)).toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    expect(manifestOf(plan.dir).stages.kl!.status).toBe("interrupted");
    const klKept = readFileSync(klFile, "utf8");
    const keptLines = klKept.split("\n").filter(Boolean).length;
    expect(keptLines).toBeGreaterThanOrEqual(3);
    expect(keptLines).toBeLessThan(12);
    const stopped = await interruptedAt(plan, (e) => e.type === "progress" && e.stage === "stability" && e.label === "stability general");
    expect(Exit.isFailure(stopped) && Cause.hasInterruptsOnly(stopped.cause)).toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    const manifest = manifestOf(plan.dir);
    expect(manifest.stages.stability!.status).toBe("interrupted");
    expect(existsSync(join(plan.dir, "stages", "stability", "stability.json"))).toBe(false);
    const rest = await runExperiment(plan);
    expect(rest.ok, JSON.stringify(rest.stages.filter((st) => st.status === "failed"))).toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    expect(manifestOf(plan.dir).stages.stability!.attempts).toBe(2);
    const curves = JSON.parse(readFileSync(join(plan.dir, "stages", "stability", "stability.json"), "utf8")) as { curves: object };
    expect(Object.keys(curves.curves)).toEqual(["general", "narrow"]);
    const klFinal = readFileSync(klFile, "utf8");
    expect(klFinal.startsWith(klKept)).toBe(true);
    expect(klFinal.split("\n").filter(Boolean)).toHaveLength(12);
    expect(manifestOf(plan.dir).stages.kl!.attempts).toBe(2);
  }, 300_000);
});
