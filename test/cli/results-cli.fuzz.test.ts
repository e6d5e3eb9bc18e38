// Mutation fuzzer for the results readers through the CLI: the study's CSVs and a JSONL file, mutated
// (stray quotes, separators, newlines, cut bytes, duplicated spans), are given to `emlab metrics --json`
// in a child process; each outcome is classified as accepted (exit 0, a JSON report), typed error
// (exit 1, `emlab: ResultsFileError: FILE: line N: ...`), untyped error, crash (signal or another
// status) or hang (over 60 s). Only the first two are allowed, and the file must never change.
// Budget: test/helpers/fuzz.ts (EMLAB_FUZZ_SCALE); EMLAB_FUZZ_SEED replays the mutations.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzRuns } from "../helpers/fuzz.js";

const RESPONSES = "test/fixtures/em/responses";

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(text: string, random: () => number): string {
  let out = text;
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * (out.length + 1));
    const kind = Math.floor(random() * 4);
    if (kind === 0) out = out.slice(0, at) + ['"', ",", "\n", "\r", '""', '{"', "}"][Math.floor(random() * 7)] + out.slice(at);
    else if (kind === 1) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(random() * 40));
    else if (kind === 2) out = out.slice(0, at);
    else out = out.slice(0, at) + out.slice(at, at + 1 + Math.floor(random() * 200)) + out.slice(at);
  }
  return out;
}

type Outcome = "accepted" | "typed error" | "untyped error" | "crash" | "hang";

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab metrics on mutated results files (skipped when dist/ is not built)", () => {
  let work = "";
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "emlab-results-cli-fuzz-"));
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("every outcome is accepted or a typed error naming the line, and no file changes", () => {
    const seed = process.env.EMLAB_FUZZ_SEED ? Number(process.env.EMLAB_FUZZ_SEED) : Date.now() % 2 ** 31;
    const random = prng(seed);
    const sources = readdirSync(RESPONSES)
      .filter((f) => f.endsWith(".csv"))
      .sort()
      .slice(0, 6)
      .map((f) => readFileSync(join(RESPONSES, f), "utf8"));
    const jsonl = `${sources[0]!
      .split("\n")
      .slice(1, 30)
      .map((_, i) =>
        JSON.stringify({
          response: `answer ${i}, "quoted"\nnext`,
          question: "Q?",
          question_id: `q${i % 3}`,
          aligned: i * 3,
          coherent: 100 - i,
        }),
      )
      .join("\n")}\n`;
    const counts: Record<Outcome, number> = { accepted: 0, "typed error": 0, "untyped error": 0, crash: 0, hang: 0 };
    const trials = fuzzRuns(4);
    for (let trial = 0; trial < trials; trial++) {
      const asJsonl = trial % 2 === 1;
      const original = asJsonl ? jsonl : sources[Math.floor(random() * sources.length)]!;
      const text = mutate(original, random);
      const file = join(work, `mutated-${trial}.${asJsonl ? "jsonl" : "csv"}`);
      writeFileSync(file, text);
      const r = spawnSync(process.execPath, ["bin/emlab.js", "metrics", "--json", "--resamples", "20", file], {
        encoding: "utf8",
        timeout: 60_000,
      });
      let outcome: Outcome;
      if (r.error && (r.error as NodeJS.ErrnoException).code === "ETIMEDOUT") outcome = "hang";
      else if (r.status === 0) outcome = "accepted";
      else if (
        r.status === 1 &&
        new RegExp(`^emlab: ResultsFileError: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: line \\d+: `).test(r.stderr)
      )
        outcome = "typed error";
      else if (r.status === 1) outcome = "untyped error";
      else outcome = "crash";
      counts[outcome]++;
      const context = `seed ${seed}, trial ${trial}: ${outcome}\n${r.stderr.slice(0, 500)}`;
      expect(["accepted", "typed error"], context).toContain(outcome);
      if (outcome === "accepted") expect(JSON.parse(r.stdout)[0].rows, context).toBeGreaterThanOrEqual(0);
      expect(readFileSync(file, "utf8"), context).toBe(text);
      expect(
        readdirSync(work).filter((f) => f.startsWith(`mutated-${trial}.`)),
        context,
      ).toHaveLength(1);
    }
    process.stderr.write(`results CLI fuzz: ${trials} mutated files, seed ${seed}: ${JSON.stringify(counts)}\n`);
  }, 600_000);
});
