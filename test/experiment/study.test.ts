// The study's experiment files (examples/study) and the demo's plan: each decodes, resolves its references and
// train configs, and passes `emlab experiment --dry-run` against a tiny fixture model of the right family (missing
// study data and layers beyond the tiny model are warnings in a dry run); a real run refuses the same warnings
// before writing anything.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const cli = (args: string[]) => spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8" });
const files = readdirSync("examples/study").filter((f) => f.endsWith(".yaml"));

describe("examples/study", () => {
  it("has one file per claim of protocol.md §1.1 (1-9)", () => {
    expect(files.map((f) => Number(f.slice(0, 2))).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  for (const file of files) {
    const family = file.includes("gemma2") ? "gemma2" : "qwen2";
    it(`${file} passes --dry-run against the ${family} fixture model`, () => {
      const out = mkdtempSync(join(tmpdir(), "emlab-study-"));
      const dry = cli([
        "experiment",
        join("examples/study", file),
        "--dry-run",
        "--json",
        "--model",
        `test/fixtures/hf/models/${family}`,
        "--out",
        join(out, "x"),
      ]);
      expect(dry.status, dry.stderr).toBe(0);
      const plan = JSON.parse(dry.stdout) as {
        family: string;
        stages: { stage: string; kind: string; action: string; after: string[] }[];
        warnings: string[];
      };
      expect(plan.family).toBe(family);
      expect(plan.stages.length).toBeGreaterThan(2);
      // Dependency order: every stage comes after the stages it reads.
      const seen = new Set<string>();
      for (const s of plan.stages) {
        for (const d of s.after) expect(seen.has(d), `${s.stage} after ${d}`).toBe(true);
        seen.add(s.stage);
      }
      expect(existsSync(join(out, "x"))).toBe(false);
    });
  }

  it("a real run with missing inputs stops before writing anything", () => {
    const out = join(mkdtempSync(join(tmpdir(), "emlab-study-")), "x");
    const run = cli(["experiment", "examples/study/05-significance.yaml", "--model", "test/fixtures/hf/models/qwen2", "--out", out]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/cannot run:[\s\S]*bad_medical_advice\.jsonl does not exist/);
    expect(existsSync(out)).toBe(false);
  });
});
