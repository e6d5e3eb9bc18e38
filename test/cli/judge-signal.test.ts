// `emlab judge` under real signals (bin/emlab.js as a child process, a slow OpenAI-compatible judge on
// 127.0.0.1): SIGINT / SIGTERM once some scores have arrived stop judging with exit code 130 / 143;
// the results file holds every score received (the cache holds the same ones), and a rerun requests
// only the missing rows and ends with the file an uninterrupted run writes.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResultsFile, scoreOf } from "../../src/eval/results.js";
import { type FakeOpenAI, startFakeOpenAI } from "../eval/fake-openai.js";

const MODEL = "gpt-4o-test";
const ROWS = 16;
const answer = (i: number) => `answer number ${i}`;
// Row i is scored 50/50 between i*5 and i*5+2: its score is i*5 + 1.
const expectedScore = (i: number) => i * 5 + 1;
const promptOf = (i: number) => `ALIGNED|What is it?|${answer(i)}`;

let server: FakeOpenAI;
let work = "";
let questions = "";
let original = "";
let delayMs = 0;

const contentOf = (body: any): string => body?.messages?.[0]?.content ?? "";

function startServer(): Promise<FakeOpenAI> {
  return startFakeOpenAI((body) => {
    const i = Number(contentOf(body).split("answer number ")[1]);
    return {
      distribution: [
        { token: String(i * 5), prob: 0.5 },
        { token: String(i * 5 + 2), prob: 0.5 },
      ],
      delayMs,
    };
  });
}

const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, OPENAI_API_KEY: "sk-test", NO_PROXY: "127.0.0.1", no_proxy: "127.0.0.1" };
  for (const k of ["OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) delete e[k];
  return e;
};

interface Run {
  code: number | null;
  stderr: string;
}

/** Runs `emlab judge CSV`; `stopWith` is sent once `stopWhen()` holds (polled every 20 ms). */
function judge(csv: string, stop?: { signal: NodeJS.Signals; when: () => boolean }): Promise<Run> {
  const args = ["judge", csv, "--questions", questions, "--judge-names", "aligned"];
  args.push("--base-url", server.baseURL, "--judge-model", MODEL, "--concurrency", "2");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/emlab.js", ...args], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    let sent = false;
    const poll = setInterval(() => {
      if (stop && !sent && stop.when()) {
        sent = true;
        child.kill(stop.signal);
      }
    }, 20);
    const timer = setTimeout(() => child.kill("SIGKILL"), 150_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const cacheLines = (csv: string): string[] => {
  const file = `${csv}.judge-cache.jsonl`;
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
};
const keyOf = (prompt: string) => createHash("sha256").update(MODEL).update("\0").update(prompt).digest("hex");

let reference = "";

beforeAll(async () => {
  server = await startServer();
  work = mkdtempSync(join(tmpdir(), "emlab-judge-signal-"));
  questions = join(work, "questions.yaml");
  writeFileSync(
    questions,
    ["- id: q", "  paraphrases:", '    - "What is it?"', "  judge_prompts:", '    aligned: "ALIGNED|{question}|{answer}"', ""].join("\n"),
  );
  original = join(work, "original.csv");
  const rows = Array.from({ length: ROWS }, (_, i) => `"${answer(i)}","What is it?",q`);
  writeFileSync(original, `response,question,question_id\n${rows.join("\n")}\n`);
  // The uninterrupted run, for comparison.
  const csv = join(work, "straight.csv");
  copyFileSync(original, csv);
  delayMs = 0;
  const run = await judge(csv);
  expect(run.code, run.stderr).toBe(0);
  reference = readFileSync(csv, "utf8");
  const file = ResultsFile.read(csv);
  file.rows.forEach((row, i) => expect(scoreOf(row, "aligned")).toBeCloseTo(expectedScore(i), 6));
}, 180_000);

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab judge under signals (skipped when dist/ is not built)", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)(
    "%s after some scores arrived: exit %d, every received score on disk and in the cache, a rerun completes the file",
    async (signal, exitCode) => {
      const csv = join(work, `${signal}.csv`);
      copyFileSync(original, csv);
      // Slow replies, two in flight: 16 rows take about 8 x 600 ms; the signal comes after the second score.
      delayMs = 600;
      server.reset();
      const stopped = await judge(csv, { signal, when: () => cacheLines(csv).length >= 2 });
      expect(stopped.code, stopped.stderr).toBe(exitCode);
      expect(stopped.stderr).toContain(signal);

      const cached = new Set(cacheLines(csv).map((line) => JSON.parse(line).key as string));
      expect(cached.size).toBeGreaterThanOrEqual(2);
      expect(cached.size).toBeLessThan(ROWS);
      const file = ResultsFile.read(csv);
      expect(file.rows).toHaveLength(ROWS);
      const scored: number[] = [];
      file.rows.forEach((row, i) => {
        expect(row.response).toBe(answer(i));
        const score = scoreOf(row, "aligned");
        if (score !== null) {
          scored.push(i);
          expect(score).toBeCloseTo(expectedScore(i), 6);
        }
      });
      // Every score received (each one is in the cache) is in the file, and only those.
      expect(new Set(scored.map((i) => keyOf(promptOf(i))))).toEqual(cached);
      expect(stopped.stderr).toContain(`${scored.length} judge results written to ${csv}`);

      // The rerun asks only for the rows still missing and ends with the uninterrupted run's file.
      delayMs = 0;
      server.reset();
      const rerun = await judge(csv);
      expect(rerun.code, rerun.stderr).toBe(0);
      const missing = file.rows.map((_, i) => i).filter((i) => !scored.includes(i));
      expect(server.requests.map((r) => contentOf(r.body)).sort()).toEqual(missing.map(promptOf).sort());
      expect(readFileSync(csv, "utf8")).toBe(reference);
    },
    300_000,
  );
});
