// Fault suite for training: `emlab train` (bin/emlab.js, a child process) on a tiny random Qwen2 with
// the real Qwen2.5 tokenizer is killed with SIGKILL at random points, then continued with --resume
// until it finishes; every file of the run directory (adapter, metrics.jsonl, each checkpoint's
// tensors and state, config.resolved.json) must equal the uninterrupted run's, and no temporary may
// be left. Each trial is a list of kills, each at a random delay after the run reports step k (k = 0:
// from its start), the delay a random fraction of up to 1.5 step times of the uninterrupted run, so
// kills land inside steps, checkpoint writes, the final evaluation and the adapter write.
// CI runs a fixed trial (a kill before the first checkpoint) and 1 random one; EMLAB_FUZZ_SCALE
// multiplies the random ones (test/helpers/fuzz-budget.ts).
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzParameters, fuzzTimeout } from "../helpers/fuzz-budget.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { metricsWithoutTiming, type TrainExit, trainChild, writeTrainConfig } from "../helpers/train-child.js";

let work = "";
let modelDir = "";
let stepMs = 0;
let trialCount = 0;
const killsAt: string[] = [];

/** Writes the run config for `name` (six steps, LoRA dropout drawing the RNG, checkpoints every 2) and returns its path. */
const configFile = (name: string): string =>
  writeTrainConfig(work, name, modelDir, {
    maxLength: 96,
    training: "{ max_steps: 6, batch_size: 2, gradient_accumulation: 1, lr: 1.0e-2, warmup_steps: 1, save_steps: 2, seed: 7 }",
  });

interface Kill {
  /** Armed when the run reports a step >= afterStep (0: at start). */
  afterStep: number;
  delayMs: number;
}

/** Starts `emlab train FILE [--resume]`; kills it with SIGKILL as `kill` says unless it ended first. */
async function trainOnce(file: string, resume: boolean, kill: Kill | null, stepTimes: number[] = []): Promise<TrainExit> {
  let timer: NodeJS.Timeout | null = null;
  const arm = (child: ChildProcess) => {
    if (kill && timer === null) timer = setTimeout(() => child.kill("SIGKILL"), kill.delayMs);
  };
  const exit = await trainChild(file, resume, {
    onStart: (child) => {
      if (kill && kill.afterStep === 0) arm(child);
    },
    onStep: (step, child) => {
      stepTimes.push(Date.now());
      if (kill && step >= kill.afterStep) arm(child);
    },
  });
  if (timer) clearTimeout(timer);
  return exit;
}

/** Every file under `dir`, relative, sorted. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(dir, path));
    }
  };
  walk(dir);
  return out.sort();
}

/** Compares the run directory `b` with the reference `a`, file by file. */
function expectSameRun(a: string, b: string): void {
  const files = filesUnder(a);
  expect(filesUnder(b)).toEqual(files);
  for (const file of files) {
    const [x, y] = [join(a, file), join(b, file)];
    if (file === "metrics.jsonl") expect(metricsWithoutTiming(y), file).toEqual(metricsWithoutTiming(x));
    else if (file === "config.resolved.json") {
      const config = (path: string, dir: string) =>
        JSON.parse(readFileSync(path, "utf8").replaceAll(JSON.stringify(dir), '"<output_dir>"'));
      expect(config(y, b), file).toEqual(config(x, a));
    } else expect(readFileSync(y).equals(readFileSync(x)), file).toBe(true);
  }
}

beforeAll(async () => {
  if (!existsSync("dist/cli/main.js")) throw new Error("dist/ is missing: run npx tsc -p tsconfig.build.json first");
  ({ work, modelDir } = makeTinyModel("emlab-kill-resume-", 0, 2));
  const times: number[] = [];
  const reference = await trainOnce(configFile("reference"), false, null, times);
  expect(reference.code, reference.stderr).toBe(0);
  expect(times.length).toBe(6);
  stepMs = (times[5]! - times[0]!) / 5;
}, 180_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("kill -9 and --resume", () => {
  it(
    "killed at random points and resumed until done, the run directory equals the uninterrupted run's file by file",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              afterStep: fc.noBias(fc.integer({ min: 0, max: 6 })),
              steps: fc.noBias(fc.integer({ min: 0, max: 150 })).map((n) => n / 100),
            }),
            { minLength: 1, maxLength: 2 },
          ),
          async (kills) => {
            const name = `trial-${trialCount++}`;
            const file = configFile(name);
            const out = join(work, name);
            let finished = false;
            for (const [i, kill] of kills.entries()) {
              const exit = await trainOnce(file, i > 0, { afterStep: kill.afterStep, delayMs: Math.round(kill.steps * stepMs) });
              if (exit.signal === "SIGKILL") {
                const metrics = existsSync(join(out, "metrics.jsonl"))
                  ? readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n").length - 1
                  : 0;
                const checkpoints = existsSync(join(out, "checkpoints")) ? readdirSync(join(out, "checkpoints")).length : 0;
                killsAt.push(
                  `step ${kill.afterStep} + ${kill.steps.toFixed(2)} steps: ${metrics} metrics lines, ${checkpoints} checkpoint entries`,
                );
                continue;
              }
              expect(exit.code, exit.stderr).toBe(0);
              finished = true;
              break;
            }
            if (!finished) {
              const exit = await trainOnce(file, true, null);
              expect(exit.code, exit.stderr).toBe(0);
            }
            expectSameRun(join(work, "reference"), out);
            rmSync(out, { recursive: true, force: true });
          },
        ),
        // Always tried first: a kill during step 2, before the first checkpoint exists.
        { ...fuzzParameters(1), endOnFailure: true, examples: [[[{ afterStep: 1, steps: 0.3 }]]] },
      );
      console.log(`kill-resume: ${stepMs.toFixed(0)} ms per step; kills: ${killsAt.join("; ") || "none landed"}`);
    },
    fuzzTimeout(400_000),
  );
});
