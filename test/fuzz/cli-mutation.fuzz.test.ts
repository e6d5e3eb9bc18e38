// The CLI mutation fuzzer: copies a small valid model directory (the qwen2 fixture with a byte-level tokenizer and
// Qwen2.5's chat template), applies a seeded mutation from mutations.ts, runs `emlab generate --prompt` on it in a
// child process and classifies the outcome: typed error (exit 1 with `emlab: <Tag>Error: ...`, or a usage error
// with exit 2), accepted (exit 0), silent accept (exit 0 although the mutation must be refused), untyped error (exit
// 1 without a typed tag, or a stack trace), crash (a signal or any other exit code), hang (past the time limit) or
// memory over the bound (peak RSS measured by /usr/bin/time). CI runs a fixed small budget (every mutation kind at
// least once); `npm run fuzz` multiplies it (EMLAB_FUZZ_SCALE). The counts are printed, and written as JSON to
// EMLAB_FUZZ_REPORT when set.
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRandom } from "../../src/eval/stats.js";
import { FUZZ_SCALE, FUZZ_SEED, fuzzRuns } from "./budget.js";
import { MUTATIONS } from "./mutations.js";
import { writeTinyTokenizer } from "./tiny-tokenizer.js";

const built = existsSync("dist/cli/main.js");
const FIXTURE = "test/fixtures/hf/models/qwen2";
const TIME_LIMIT_MS = 90_000;
const MEMORY_LIMIT_KB = 2 * 1024 * 1024;
const CASES = fuzzRuns(MUTATIONS.length);
const CONCURRENCY = 2;

type Outcome = "typed" | "accepted" | "silent-accept" | "untyped" | "crash" | "hang" | "memory";
interface Result {
  index: number;
  mutation: string;
  outcome: Outcome;
  status: number | null;
  signal: string | null;
  maxRssKb: number;
  ms: number;
  stderr: string;
}

function run(
  dir: string,
  rssFile: string,
): Promise<{ status: number | null; signal: string | null; stderr: string; ms: number; timedOut: boolean }> {
  const args = [
    "-f",
    "%M",
    "-o",
    rssFile,
    process.execPath,
    "bin/emlab.js",
    "generate",
    "--model",
    dir,
    "--prompt",
    "Hi",
    "--max-new-tokens",
    "2",
    "--greedy",
    "--json",
  ];
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn("/usr/bin/time", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let timedOut = false;
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, TIME_LIMIT_MS);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

function classify(expectation: "reject" | "any", r: Awaited<ReturnType<typeof run>>, maxRssKb: number): Outcome {
  if (r.timedOut) return "hang";
  // /usr/bin/time reports a child killed by a signal as "Command terminated by signal N" and exits 128+N.
  if (r.signal !== null || /Command terminated by signal/.test(r.stderr) || (r.status !== 0 && r.status !== 1 && r.status !== 2))
    return "crash";
  if (maxRssKb > MEMORY_LIMIT_KB) return "memory";
  if (r.status === 0) return expectation === "reject" ? "silent-accept" : "accepted";
  const message = r.stderr.replace(/Command exited with non-zero status \d+\n?/, "");
  if (/\n\s+at /.test(message)) return "untyped";
  if (r.status === 2) return /^emlab: /.test(message) ? "typed" : "untyped";
  return /^emlab: [A-Z][A-Za-z]*Error: /.test(message) && !/^emlab: (TypeError|RangeError|Error): /.test(message) ? "typed" : "untyped";
}

describe.skipIf(!built)("CLI mutation fuzzer (skipped when dist/ is not built)", () => {
  let work = "";
  let base = "";
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "emlab-fuzz-cli-"));
    base = join(work, "base");
    mkdirSync(base);
    for (const name of ["config.json", "generation_config.json", "model.safetensors"]) copyFileSync(join(FIXTURE, name), join(base, name));
    writeTinyTokenizer(base);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const copyBase = (dir: string): void => {
    mkdirSync(dir);
    for (const name of ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
      copyFileSync(join(base, name), join(dir, name));
  };

  it("the control: the unmutated directory generates (exit 0)", async () => {
    const r = await run(base, join(work, "control.rss"));
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);

  it(
    `${CASES} mutated directories: only typed errors and legitimate accepts (no crash, hang, untyped error, silent accept or memory over 2 GiB)`,
    async () => {
      const results: Result[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < CASES) {
          const index = next++;
          // Every kind once per round, in order; the parameters from the case's own seed.
          const mutation = MUTATIONS[index % MUTATIONS.length]!;
          const random = seededRandom(FUZZ_SEED + index);
          const dir = join(work, `case-${index}`);
          copyBase(dir);
          mutation.apply(dir, random);
          const rssFile = join(work, `case-${index}.rss`);
          const r = await run(dir, rssFile);
          const maxRssKb = existsSync(rssFile) ? Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) || 0 : 0;
          results.push({
            index,
            mutation: mutation.name,
            outcome: classify(mutation.expect, r, maxRssKb),
            status: r.status,
            signal: r.signal,
            maxRssKb,
            ms: r.ms,
            stderr: r.stderr.slice(0, 300),
          });
          rmSync(dir, { recursive: true, force: true });
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      results.sort((a, b) => a.index - b.index);
      const counts: Record<Outcome, number> = { typed: 0, accepted: 0, "silent-accept": 0, untyped: 0, crash: 0, hang: 0, memory: 0 };
      for (const r of results) counts[r.outcome]++;
      const peakRssMb = Math.max(...results.map((r) => r.maxRssKb)) / 1024;
      const summary = { cases: results.length, scale: FUZZ_SCALE, seed: FUZZ_SEED, counts, peakRssMb: Math.round(peakRssMb) };
      process.stdout.write(`[cli-mutation fuzz] ${JSON.stringify(summary)}\n`);
      if (process.env.EMLAB_FUZZ_REPORT)
        writeFileSync(process.env.EMLAB_FUZZ_REPORT, `${JSON.stringify({ ...summary, results }, null, 2)}\n`);
      const bad = results.filter((r) => !["typed", "accepted"].includes(r.outcome));
      expect(
        bad.map((r) => `#${r.index} ${r.mutation}: ${r.outcome} (exit ${r.status}${r.signal ? `, ${r.signal}` : ""}) ${r.stderr}`),
      ).toEqual([]);
      expect(results).toHaveLength(CASES);
    },
    CASES * 60_000,
  );
});
