// `emlab train` under real signals (bin/emlab.js as a child process, a tiny random Qwen2 with the
// real Qwen2.5 tokenizer): SIGINT / SIGTERM after a progress line stop the run between steps with
// exit code 130 / 143, stderr names the checkpoint written, and `--resume` from it finishes with the
// same adapter and metrics as an uninterrupted run.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { type TrainExit, metricsWithoutTiming, trainChild, writeTrainConfig } from "../helpers/train-child.js";

const STEPS = 8;

let work = "";
let modelDir = "";

const configFile = (name: string): string =>
  writeTrainConfig(work, name, modelDir, {
    maxLength: 64,
    training: `{ max_steps: ${STEPS}, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, save_steps: 1000, seed: 7 }`,
  });

/** `emlab train FILE [--resume]`; sends `signal` once the run reports step `afterStep`. */
function train(file: string, resume: boolean, stop: { signal: NodeJS.Signals; afterStep: number } | null): Promise<TrainExit> {
  let sent = false;
  return trainChild(file, resume, {
    onStep: (step, child) => {
      if (stop && !sent && step >= stop.afterStep) {
        sent = true;
        child.kill(stop.signal);
      }
    },
  });
}

const metrics = (dir: string): unknown[] => metricsWithoutTiming(join(dir, "metrics.jsonl"));
const adapter = (dir: string): Buffer => readFileSync(join(dir, "adapter", "adapter_model.safetensors"));

beforeAll(async () => {
  if (!existsSync("dist/cli/main.js")) throw new Error("dist/ is missing: run npx tsc -p tsconfig.build.json first");
  ({ work, modelDir } = makeTinyModel("emlab-train-signal-", 0, 2));
  const reference = await train(configFile("reference"), false, null);
  expect(reference.code, reference.stderr).toBe(0);
}, 180_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("emlab train under SIGINT / SIGTERM", () => {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`${signal}: exit ${code}, a checkpoint named on stderr, and --resume ends equal to the uninterrupted run`, async () => {
      const name = `stopped-${signal}`;
      const file = configFile(name);
      const stopped = await train(file, false, { signal, afterStep: 1 });
      expect(stopped.signal, stopped.stderr).toBe(null);
      expect(stopped.code, stopped.stderr).toBe(code);
      const named = /interrupted after step (\d+); checkpoint in (\S+)/.exec(stopped.stderr);
      expect(named, stopped.stderr).not.toBe(null);
      const step = Number(named![1]);
      expect(step).toBeGreaterThanOrEqual(1);
      expect(step).toBeLessThan(STEPS);
      expect(existsSync(join(named![2]!, "state.json"))).toBe(true);
      expect(existsSync(join(work, name, "adapter")), "an interrupted run has no final adapter").toBe(false);

      const resumed = await train(file, true, null);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain(`resumed from ${named![2]} at step ${step}`);
      expect(adapter(join(work, name)).equals(adapter(join(work, "reference")))).toBe(true);
      expect(metrics(join(work, name))).toEqual(metrics(join(work, "reference")));
    }, 180_000);
  }
});
