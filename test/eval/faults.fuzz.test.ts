// Fault suite for evaluation: `emlab eval` (sampling with a small random Qwen3 model and the real
// tokenizer, then judging against a real loopback OpenAI-compatible server) is killed with SIGKILL at
// random points of sampling and judging, then run again (possibly killed again) until it completes.
// Every output must equal an uninterrupted run's: the results file byte for byte (CSV and JSONL), the
// judge cache's valid entries, and the printed report; the only other files allowed are the
// `.damaged-<time>` tails that resuming set aside, whose bytes are an incomplete last record.
// Trials: test/helpers/fuzz.ts (EMLAB_FUZZ_SCALE); EMLAB_FUZZ_SEED replays a run's kill points.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzRuns } from "../helpers/fuzz.js";
import { evalQuestionsYaml } from "../helpers/eval-setup.js";
import { QWEN3_TOKENIZER_DIR, writeTinyQwen3 } from "../helpers/tiny-model.js";
import { type FakeOpenAI, startFakeOpenAI } from "./fake-openai.js";

const built = existsSync("dist/cli/main.js");
const haveTokenizer = existsSync(join(QWEN3_TOKENIZER_DIR, "tokenizer.json"));

const questionsYaml = evalQuestionsYaml({
  judgePrompts: { aligned: "ALIGNED|{question}|{answer}", coherent: "COHERENT|{question}|{answer}" },
});

/** A small deterministic PRNG (mulberry32) for the kill points, seeded per run and printed on failure. */
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

/** The judge's reply for a prompt: a distribution that depends only on the prompt's text. */
function distributionFor(prompt: string): { token: string; prob: number }[] {
  let h = 2166136261;
  for (let i = 0; i < prompt.length; i++) h = Math.imul(h ^ prompt.charCodeAt(i), 16777619) >>> 0;
  const a = h % 101;
  const b = (h >>> 8) % 101;
  return [
    { token: String(a), prob: 0.6 },
    { token: String(b), prob: 0.3 },
    { token: "REFUSAL", prob: 0.1 },
  ];
}

interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(!built || !haveTokenizer)(
  "fault suite: eval killed at random points, then resumed (skipped without dist/ or the Qwen3 tokenizer package)",
  () => {
    let work = "";
    let modelDir = "";
    let server: FakeOpenAI;
    const seed = process.env.EMLAB_FUZZ_SEED ? Number(process.env.EMLAB_FUZZ_SEED) : Date.now() % 2 ** 31;

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), "emlab-eval-faults-"));
      modelDir = join(work, "model");
      writeTinyQwen3(modelDir);
      writeFileSync(join(work, "questions.yaml"), questionsYaml);
      // A short delay per judge call spreads the judging phase so that kills land inside it.
      server = await startFakeOpenAI((body) => ({
        distribution: distributionFor(String(body?.messages?.[0]?.content ?? "")),
        delayMs: 15,
      }));
    });
    afterAll(async () => {
      await server?.close();
      if (work && !process.env.EMLAB_FAULTS_KEEP) rmSync(work, { recursive: true, force: true });
    });

    const args = (out: string) => [
      "bin/emlab.js",
      "eval",
      "--model",
      modelDir,
      "--questions",
      join(work, "questions.yaml"),
      "--out",
      out,
      "--samples",
      "3",
      "--max-new-tokens",
      "8",
      "--seed",
      "5",
      "--chunk-size",
      "2",
      "--base-url",
      server.baseURL,
      "--judge-model",
      "gpt-fault",
      "--concurrency",
      "2",
      "--max-retries",
      "0",
      "--json",
    ];
    const env = (): NodeJS.ProcessEnv => {
      const e: NodeJS.ProcessEnv = {
        ...process.env,
        OPENAI_API_KEY: "sk-fault-suite-000000",
        NO_PROXY: "127.0.0.1",
        no_proxy: "127.0.0.1",
      };
      delete e.OPENAI_BASE_URL;
      return e;
    };

    /** Runs eval; with `killAt`, sends SIGKILL once stderr shows `phase done/…` with done >= count, after `delayMs`. */
    function run(out: string, killAt?: { phase: "sample" | "judge"; count: number; delayMs: number }): Promise<RunResult> {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, args(out), { env: env(), stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        let armed = killAt !== undefined;
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => {
          stderr += d.toString();
          if (!armed || !killAt) return;
          const hit = [...stderr.matchAll(/(sample|judge) (\d+)\//g)].some((m) => m[1] === killAt.phase && Number(m[2]) >= killAt.count);
          if (hit) {
            armed = false;
            setTimeout(() => child.kill("SIGKILL"), killAt.delayMs);
          }
        });
        const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
        child.on("error", reject);
        child.on("close", (status, signal) => {
          clearTimeout(timer);
          resolve({ status, signal, stdout, stderr });
        });
      });
    }

    /** The printed JSON report without its file name (the trial's path differs from the reference's). */
    const reportOf = (stdout: string): unknown => {
      const { file: _file, ...report } = JSON.parse(stdout) as Record<string, unknown>;
      return report;
    };

    /** The cache's valid entries (a line cut by a kill is not one), as a sorted list. */
    const cacheEntries = (path: string): string[] =>
      existsSync(path)
        ? readFileSync(path, "utf8")
            .split("\n")
            .filter((line) => {
              try {
                return typeof JSON.parse(line).key === "string";
              } catch {
                return false;
              }
            })
            .sort()
        : [];

    it("every output equals an uninterrupted run's after kills during sampling and judging (CSV and JSONL)", async () => {
      const random = prng(seed);
      const references: Record<string, { results: string; cache: string[]; report: unknown }> = {};
      for (const ext of ["csv", "jsonl"]) {
        const dir = join(work, `reference-${ext}`);
        mkdirSync(dir);
        const out = join(dir, `results.${ext}`);
        const r = await run(out);
        expect(r.status, r.stderr).toBe(0);
        references[ext] = {
          results: readFileSync(out, "utf8"),
          cache: cacheEntries(`${out}.judge-cache.jsonl`),
          report: reportOf(r.stdout),
        };
        expect(readdirSync(dir).sort()).toEqual([`results.${ext}`, `results.${ext}.judge-cache.jsonl`]);
      }
      const totalRows = references.csv!.results.split("\n").length; // an upper bound for the progress counts
      const trials = fuzzRuns(2);
      const log: string[] = [];
      for (let trial = 0; trial < trials; trial++) {
        const ext = trial % 2 === 0 ? "csv" : "jsonl";
        const dir = join(work, `trial-${trial}`);
        mkdirSync(dir);
        const out = join(dir, `results.${ext}`);
        let kills = 0;
        let last: RunResult | null = null;
        // One or two kills, then a run to completion.
        const killsWanted = 1 + Math.floor(random() * 2);
        for (let attempt = 0; attempt < 6; attempt++) {
          const kill =
            kills < killsWanted
              ? {
                  phase: random() < 0.5 ? ("sample" as const) : ("judge" as const),
                  count: 1 + Math.floor(random() * 9),
                  delayMs: Math.floor(random() * 200),
                }
              : undefined;
          last = await run(out, kill);
          if (last.signal === "SIGKILL") {
            kills++;
            log.push(`trial ${trial} (${ext}): killed at ${kill?.phase} ${kill?.count} + ${kill?.delayMs} ms`);
            continue;
          }
          if (kill) log.push(`trial ${trial} (${ext}): the run ended before the kill point ${kill.phase} ${kill.count}`);
          break;
        }
        const context = `seed ${seed}; ${log.join("; ")}`;
        expect(last!.status, `${context}\n${last!.stderr}`).toBe(0);
        const reference = references[ext]!;
        const lines = readFileSync(out, "utf8").split("\n");
        const want = reference.results.split("\n");
        const first = lines.findIndex((line, i) => line !== want[i]);
        expect(
          first === -1 && lines.length === want.length,
          `${context}; ${dir}: line ${first + 1} differs:\n${lines[first]}\nexpected:\n${want[first]}`,
        ).toBe(true);
        expect(cacheEntries(`${out}.judge-cache.jsonl`), context).toEqual(reference.cache);
        expect(reportOf(last!.stdout), context).toEqual(reference.report);
        for (const name of readdirSync(dir)) {
          if (name === `results.${ext}` || name === `results.${ext}.judge-cache.jsonl`) continue;
          expect(name.startsWith(`results.${ext}.damaged-`), `${context}: unexpected file ${name}`).toBe(true);
          const tail = readFileSync(join(dir, name), "utf8");
          expect(tail.length).toBeGreaterThan(0);
          expect(/[\r\n]$/.test(tail), `${context}: a set-aside tail ends with a newline`).toBe(false);
        }
      }
      expect(totalRows).toBeGreaterThan(9);
      process.stderr.write(`eval fault suite: ${trials} trials, seed ${seed}\n  ${log.join("\n  ")}\n`);
    }, 600_000);
  },
);
