// emlab experiment end to end on the miniature organism, through the CLI (dist): a complete run, a
// second run that skips everything, a run killed (SIGKILL) while each stage is running and resumed
// until complete, whose outputs must equal the uninterrupted run's byte for byte (training resumes
// exactly on CPU, sampling completes the same rows) without redoing stages finished before a kill;
// --dry-run plans, --only forces one stage, and bad files fail before anything is written.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Manifest } from "../../src/experiment/manifest.js";
import { makeExperiment, outputHashes } from "./fixture.js";

const cli = (args: string[]) => spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8" });
const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Manifest;

/** Starts the experiment and SIGKILLs it as soon as `stage` is recorded as running; resolves with whether it was killed. */
function runAndKillAt(file: string, dir: string, stage: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/emlab.js", "experiment", file], { stdio: "ignore" });
    let killed = false;
    const timer = setInterval(() => {
      try {
        const m = manifestOf(dir);
        if (m.stages[stage]?.status === "running") {
          killed = child.kill("SIGKILL");
          clearInterval(timer);
        }
      } catch {
        // manifest not written yet, or replaced at this instant
      }
    }, 5);
    child.on("exit", () => {
      clearInterval(timer);
      resolve(killed);
    });
  });
}

describe("emlab experiment", () => {
  it("runs every stage, skips them when unchanged, --only reruns one, and a killed run resumes to the same outputs", async () => {
    const reference = makeExperiment("emlab-exp-ref-");
    const first = cli(["experiment", reference.file, "--json"]);
    expect(first.status, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout) as { ok: boolean; stages: { name: string; status: string }[] };
    expect(summary.ok).toBe(true);
    expect(summary.stages.every((s) => s.status === "complete")).toBe(true);
    const refDir = join(reference.work, "out");
    const refManifest = manifestOf(refDir);
    const names = refManifest.order;
    expect(names.length).toBe(17);

    const again = cli(["experiment", reference.file, "--json"]);
    expect(again.status, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as typeof summary).stages.every((s) => s.status === "skipped")).toBe(true);
    expect(manifestOf(refDir).stages.chat!.finished).toBe(refManifest.stages.chat!.finished);
    // --only forces one stage to run again and leaves the others alone.
    const only = cli(["experiment", reference.file, "--only", "metrics", "--json"]);
    expect(only.status, only.stderr).toBe(0);
    const onlyStages = (JSON.parse(only.stdout) as typeof summary).stages;
    expect(onlyStages.filter((s) => s.status === "complete").map((s) => s.name)).toEqual(["metrics"]);
    expect(manifestOf(refDir).stages.metrics!.finished).not.toBe(refManifest.stages.metrics!.finished);
    expect(manifestOf(refDir).stages.chat!.finished).toBe(refManifest.stages.chat!.finished);

    // Kill while each stage runs in turn; re-running continues from there.
    const killedRun = makeExperiment("emlab-exp-kill-");
    const dir = join(killedRun.work, "out");
    const killedAt: string[] = [];
    const finishedBefore = new Map<string, string>();
    for (const stage of names) {
      if (existsSync(join(dir, "manifest.json")) && manifestOf(dir).stages[stage]?.status === "complete") continue;
      if (existsSync(join(dir, "manifest.json")))
        for (const [n, r] of Object.entries(manifestOf(dir).stages))
          if (r.status === "complete" && !finishedBefore.has(n)) finishedBefore.set(n, r.finished!);
      if (await runAndKillAt(killedRun.file, dir, stage)) killedAt.push(stage);
    }
    const last = cli(["experiment", killedRun.file, "--json"]);
    expect(last.status, last.stderr).toBe(0);
    const final = manifestOf(dir);
    // Stages finished before a later kill were never run again.
    for (const [name, finished] of finishedBefore) expect(final.stages[name]!.finished, name).toBe(finished);
    expect(killedAt.length).toBeGreaterThanOrEqual(5);
    expect(killedAt).toContain("chat");
    expect(final.stages.chat!.attempts).toBeGreaterThanOrEqual(2);
    // Same outputs as the uninterrupted run (paths relative to each experiment directory).
    const hashes = outputHashes(dir, final);
    const refHashes = outputHashes(refDir, manifestOf(refDir));
    const comparable = Object.keys(refHashes).filter((k) => !k.endsWith("metrics.jsonl"));
    for (const k of comparable) expect(hashes[k], k).toBe(refHashes[k]);
    // Training metrics: the same steps once each, with the same losses.
    const losses = (d: string) =>
      readFileSync(join(d, "stages", "chat", "run", "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(losses(dir).map((m) => [m.step, m.loss])).toEqual(losses(refDir).map((m) => [m.step, m.loss]));
  }, 600_000);

  it("--dry-run prints the plan without writing; errors name the field before anything is written", () => {
    const { work, file } = makeExperiment("emlab-exp-dry-");
    const dry = cli(["experiment", file, "--dry-run", "--json"]);
    expect(dry.status, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as { family: string; stages: { stage: string; action: string; after: string[] }[] };
    expect(plan.family).toBe("qwen2");
    expect(plan.stages.map((s) => s.action)).toEqual(new Array(17).fill("run"));
    expect(plan.stages.find((s) => s.stage === "narrow")!.after.sort()).toEqual(["chat", "kl"]);
    expect(existsSync(join(work, "out"))).toBe(false);

    writeFileSync(
      join(work, "bad.yaml"),
      "model: model\nstages:\n  - { name: a, kind: sample, questions: q.yaml, solution: b }\n  - { name: b, kind: direction, results: a }\n",
    );
    const bad = cli(["experiment", join(work, "bad.yaml")]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/stages\[0\]\.solution: b is a direction stage; expected a LoRA or steering-vector train stage/);
    writeFileSync(join(work, "typo.yaml"), "model: model\nstages:\n  - { name: a, kind: sample, questions: q.yaml, samplez: 3 }\n");
    const typo = cli(["experiment", join(work, "typo.yaml")]);
    expect(typo.status).toBe(1);
    expect(typo.stderr).toMatch(/typo\.yaml: stages\[0\].*samplez/);
    expect(existsSync(join(work, "runs"))).toBe(false);
  });
});
