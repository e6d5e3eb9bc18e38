// Interrupting the training program (what Ctrl-C does in the CLI, test/cli/train-signal.test.ts):
// the interruption lands between two steps, the program writes a checkpoint of the step reached and
// releases every tensor, and `resume` from it ends bit-identical to an uninterrupted run (LoRA dropout
// draws from the RNG every step). Run as a Promise, the program lets the event loop turn between steps.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Cause, Effect, Exit, Fiber } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTraining, runTrainingAsync, trainingProgram } from "../../src/recipes/train.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { checkpointDir } from "../../src/train/checkpoint.js";
import { type RunConfig, resolveRunConfig } from "../../src/train/config.js";
import { makeTinyModel } from "../helpers/tiny-model.js";

const SPORTS = "test/fixtures/em/train/extreme_sports.head16.jsonl";

let work: string;
let modelDir: string;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-train-interrupt-", 0, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Five steps with LoRA dropout (the RNG must be restored on resume); only the final regular checkpoint. */
const config = (name: string): RunConfig =>
  resolveRunConfig(
    {
      model: modelDir,
      output_dir: join(work, name),
      method: "lora",
      lora: { r: 2, alpha: 4, dropout: 0.2, target_modules: ["q_proj", "down_proj"] },
      data: { train: SPORTS, max_length: 64 },
      training: { max_steps: 5, batch_size: 2, lr: 1e-2, warmup_steps: 1, save_steps: 100, seed: 5 },
    },
    `${name}.yaml`,
  );

const adapterBytes = (cfg: RunConfig): Buffer => readFileSync(join(cfg.output_dir, "adapter", "adapter_model.safetensors"));
const metrics = (cfg: RunConfig): unknown[] =>
  readFileSync(join(cfg.output_dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => {
      const { tokens_per_s: _, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });

describe("interrupting a training run", () => {
  it("checkpoints the step reached, releases every tensor, and resumes to the uninterrupted run's exact weights", async () => {
    const straight = config("straight");
    runTraining(straight);

    const cfg = config("interrupted");
    const baseline = liveTensorCount();
    const logs: string[] = [];
    const fiber = Effect.runFork(
      trainingProgram(cfg, {
        log: (line) => logs.push(line),
        // Scheduled before the program's own yield after step 3: the interruption lands right there.
        onStep: (m) => void (m.step === 3 && setImmediate(() => fiber.interruptUnsafe())),
      }),
    );
    const exit = await Effect.runPromise(Fiber.await(fiber));
    expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause), "the program ends interrupted").toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    const dir = checkpointDir(cfg.output_dir, 3);
    expect(existsSync(join(dir, "trainable.safetensors"))).toBe(true);
    expect(logs.join("\n")).toContain(`interrupted after step 3; checkpoint in ${dir}`);
    expect(existsSync(join(cfg.output_dir, "adapter")), "no artefact for an unfinished run").toBe(false);

    const resumed = runTraining(cfg, { resume: true });
    expect(resumed.steps).toBe(5);
    expect(adapterBytes(cfg).equals(adapterBytes(straight))).toBe(true);
    expect(metrics(cfg)).toEqual(metrics(straight));
    expect(liveTensorCount()).toBe(baseline);
  });

  it("an interruption before the first step finishes writes nothing to resume from and leaks nothing", async () => {
    const cfg = config("early");
    const baseline = liveTensorCount();
    const logs: string[] = [];
    const fiber = Effect.runFork(trainingProgram(cfg, { log: (line) => logs.push(line) }));
    fiber.interruptUnsafe();
    const exit = await Effect.runPromise(Fiber.await(fiber));
    expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)).toBe(true);
    expect(liveTensorCount()).toBe(baseline);
    expect(existsSync(join(cfg.output_dir, "checkpoints"))).toBe(false);
  });

  it("as a Promise, the event loop turns between steps (timers and I/O run during training)", async () => {
    const cfg = config("yielding");
    const turnedBefore: boolean[] = [];
    let turned = true;
    const result = await runTrainingAsync(cfg, {
      onStep: () => {
        turnedBefore.push(turned);
        turned = false;
        setImmediate(() => {
          turned = true;
        });
      },
    });
    expect(result.steps).toBe(5);
    // Before every step after the first, the setImmediate queued by the previous step had run.
    expect(turnedBefore).toEqual([true, true, true, true, true]);
  });
});
