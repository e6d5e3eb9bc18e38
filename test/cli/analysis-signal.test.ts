// An analysis command under real signals (bin/emlab.js as a child process, a tiny random Qwen2 with the
// real Qwen2.5 tokenizer): `emlab efficiency` over many scales, sent SIGINT / SIGTERM once it reports
// progress, stops between scales with exit code 130 / 143, prints no result and leaves no output file
// (not even a temporary one beside it); the same command left alone writes its CSV.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedTensor } from "../helpers/numeric.js";
import { makeTinyModel, MEDICAL } from "../helpers/tiny-model.js";
import { BIN } from "../helpers/train-child.js";
import { saveSafetensors } from "../../src/io/safetensors.js";

let work = "";
let modelDir = "";
let vectorFile = "";

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `emlab efficiency` over `scales` scales into `out`; sends `signal` once stderr reports the first scale done. */
function efficiency(out: string, scales: number, signal: NodeJS.Signals | null): Promise<Run> {
  const list = Array.from({ length: scales }, (_, i) => (i / scales).toFixed(4)).join(",");
  const args = [
    "efficiency",
    "--model",
    modelDir,
    "--steering",
    vectorFile,
    "--data",
    MEDICAL,
    "--count",
    "2",
    "--scales",
    list,
    "--out",
    out,
  ];
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let sent = false;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      if (signal && !sent && /^efficiency \d+\//m.test(stderr)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on("error", fail);
    child.on("exit", (code, exitSignal) => done({ code, signal: exitSignal, stdout, stderr }));
  });
}

beforeAll(() => {
  if (!existsSync("dist/cli/main.js")) throw new Error("dist/ is missing: run npx tsc -p tsconfig.build.json first");
  ({ work, modelDir } = makeTinyModel("emlab-analysis-signal-", 0, 2));
  vectorFile = join(work, "vector.safetensors");
  const v = fixedTensor([32], 5, 0.3);
  saveSafetensors(vectorFile, { vector: v }, { layer: "1", site: "down_proj", alpha: "1" });
  v.dispose();
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("emlab efficiency under SIGINT / SIGTERM", { timeout: 180_000 }, () => {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`${signal}: exit ${code} between scales, no result printed, no output file and no temporary left`, async () => {
      const dir = join(work, signal);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      const out = join(dir, "efficiency.csv");
      const stopped = await efficiency(out, 400, signal);
      expect(stopped.signal, stopped.stderr).toBe(null);
      expect(stopped.code, stopped.stderr).toBe(code);
      expect(stopped.stderr).toContain(`emlab: ${signal}: stopping`);
      // It stopped part-way: the progress never reached the last scale.
      expect(stopped.stderr).not.toMatch(/efficiency 400\/400/);
      expect(stopped.stdout).toBe("");
      expect(readdirSync(dir)).toEqual([]);
    });
  }

  it("left alone, the same command writes its CSV with one row per scale", async () => {
    const out = join(work, "complete.csv");
    const done = await efficiency(out, 3, null);
    expect(done.code, done.stderr).toBe(0);
    expect(readFileSync(out, "utf8").trim().split("\n")).toHaveLength(4);
    expect(JSON.parse(done.stdout).out).toBe(out);
  });
});
