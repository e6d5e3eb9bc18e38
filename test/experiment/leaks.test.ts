// The experiment runner in-process (the library API rather than the CLI): every stage of the fixture experiment
// completes and leaves the number of live tensor handles where it was before the run (checked after each stage).
import { describe, expect, it } from "vitest";
import { planExperiment } from "../../src/experiment/plan.js";
import { runExperiment } from "../../src/experiment/run.js";
import { readExperiment } from "../../src/experiment/schema.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { makeExperiment } from "./fixture.js";

describe("runExperiment", () => {
  it("runs every stage in-process with live tensors back to baseline after each", async () => {
    const { file } = makeExperiment("emlab-exp-leak-");
    const baseline = liveTensorCount();
    const afterStage: Record<string, number> = {};
    const summary = await runExperiment(planExperiment(readExperiment(file)), {
      onEvent: (e) => {
        if (e.type === "stage-done") afterStage[e.stage] = liveTensorCount() - baseline;
      },
    });
    expect(summary.stages.filter((s) => s.status !== "complete")).toEqual([]);
    expect(Object.keys(afterStage).length).toBe(17);
    for (const [stage, extra] of Object.entries(afterStage)) expect(extra, stage).toBe(0);
  }, 300_000);
});
