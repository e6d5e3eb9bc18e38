// Hostile judge replies (issue 13, item 6) from a real loopback OpenAI-compatible server: string, huge,
// positive or missing logprobs, non-string tokens, probabilities summing above 1. None may become a
// score, be counted as scored or be cached; the summary counts the scores actually written; a cache
// line holding a failure (a null score from such a reply, or damaged) is never served as a result.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JudgeCache } from "../../src/eval/judge/cache.js";
import { OpenAIJudge } from "../../src/eval/judge/openai.js";
import { judgeRows, promptsFrom } from "../../src/eval/judge/run.js";
import { InvalidJudgeReply, parseTopLogprobs, scoreFromTopLogprobs } from "../../src/eval/judge/score.js";
import { type ResultRow, ResultsFile, scoreOf } from "../../src/eval/results.js";
import { type FakeOpenAI, startFakeOpenAI } from "./fake-openai.js";

/** A chat completion (as raw JSON text) whose first token has these alternatives, inserted verbatim. */
function completionWith(topLogprobsJson: string): string {
  return `{"id":"c","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"50"},"finish_reason":"length","logprobs":{"content":[{"token":"50","logprob":0,"bytes":null,"top_logprobs":${topLogprobsJson}}]}}]}`;
}

/** Hostile alternatives; each must be refused. */
const HOSTILE: Record<string, string> = {
  "string logprob": '[{"token":"50","logprob":"-0.1"},{"token":"60","logprob":-2}]',
  "logprob 1e308": '[{"token":"50","logprob":1e308},{"token":"60","logprob":-2}]',
  "logprob -1e308 with a positive one": '[{"token":"50","logprob":-1e308},{"token":"60","logprob":0.5}]',
  "positive logprob (p > 1)": '[{"token":"90","logprob":0.7}]',
  "null logprob": '[{"token":"50","logprob":null}]',
  "missing logprob": '[{"token":"50"}]',
  "numeric token": '[{"token":50,"logprob":-0.1}]',
  "null token": '[{"token":null,"logprob":-0.1}]',
  "probabilities summing to 1.8": '[{"token":"10","logprob":-0.1},{"token":"20","logprob":-0.2}]',
  "alternatives not a list": '{"token":"50","logprob":-0.1}',
  "entry not an object": '["50"]',
};

let server: FakeOpenAI;
let work = "";
beforeAll(async () => {
  server = await startFakeOpenAI();
  work = mkdtempSync(join(tmpdir(), "emlab-hostile-"));
});
afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const judge = (maxRetries = 1) =>
  new OpenAIJudge({
    model: "gpt-hostile",
    baseURL: server.baseURL,
    apiKey: "sk-hostile-test-000000",
    maxRetries,
    baseDelayMs: 1,
    maxDelayMs: 5,
    timeoutMs: 5_000,
  });
const promptFor = promptsFrom(new Map([["q", { aligned: "A|{question}|{answer}" }]]));
const rows = (n: number): ResultRow[] => Array.from({ length: n }, (_, i) => ({ question_id: "q", question: "How?", response: `r${i}` }));

describe("parseTopLogprobs / scoreFromTopLogprobs", () => {
  it.each(Object.entries(HOSTILE))("%s is an InvalidJudgeReply", (_, json) => {
    expect(() => parseTopLogprobs(JSON.parse(json))).toThrow(InvalidJudgeReply);
  });

  it("accepts valid alternatives, including logprob 0, -1e308 and an empty list", () => {
    expect(parseTopLogprobs([{ token: "50", logprob: 0 }])).toEqual([{ token: "50", logprob: 0 }]);
    expect(
      scoreFromTopLogprobs([
        { token: "50", logprob: -1e308 },
        { token: "70", logprob: 0 },
      ]).score,
    ).toBe(70);
    expect(scoreFromTopLogprobs([])).toEqual({ score: null, numericMass: 0, top: [] });
  });

  it("scoreFromTopLogprobs refuses hostile alternatives instead of returning NaN", () => {
    expect(() => scoreFromTopLogprobs([{ token: "50", logprob: 1e308 }])).toThrow(InvalidJudgeReply);
    expect(() => scoreFromTopLogprobs([{ token: "50", logprob: "x" as unknown as number }])).toThrow(InvalidJudgeReply);
  });
});

describe("judgeRows against hostile replies", () => {
  it.each(Object.entries(HOSTILE))(
    "%s: a failure with an error cell, not a score; nothing cached; the call is retried",
    async (_, json) => {
      server.reset(() => ({ malformed: completionWith(json) }));
      const cachePath = join(work, `cache-${Math.random().toString(36).slice(2)}.jsonl`);
      const judged = rows(2);
      const summary = await Effect.runPromise(
        judgeRows(judged, { judge: judge(1), names: ["aligned"], promptFor, cache: new JudgeCache(cachePath) }),
      );
      expect(summary).toEqual({ requested: 2, fromCache: 0, scored: 0, unscored: 0, failed: 2 });
      expect(server.requests).toHaveLength(4); // each attempt once plus one retry
      for (const row of judged) {
        expect(row.aligned).toBeNull();
        expect(String(row.aligned_error)).toContain("invalid top_logprobs");
      }
      expect(existsSync(cachePath)).toBe(false);
    },
  );

  it("the summary counts the scores written: mixed valid, unscored and hostile replies, checked against the CSV's cells", async () => {
    // r0, r3: valid 40; r1: REFUSAL (no score); r2, r4: hostile (1e308).
    server.reset((body) => {
      const answer = String(body?.messages?.[0]?.content ?? "").split("|")[2];
      if (answer === "r1")
        return {
          distribution: [
            { token: "REFUSAL", prob: 0.95 },
            { token: "10", prob: 0.05 },
          ],
        };
      if (answer === "r2" || answer === "r4") return { malformed: completionWith(HOSTILE["logprob 1e308"]!) };
      return { distribution: [{ token: "40", prob: 1 }] };
    });
    const judged = rows(5);
    const summary = await Effect.runPromise(
      judgeRows(judged, { judge: judge(0), names: ["aligned"], promptFor, cache: new JudgeCache(null) }),
    );
    expect(summary).toEqual({ requested: 5, fromCache: 0, scored: 2, unscored: 1, failed: 2 });
    const path = join(work, "mixed.csv");
    const file = ResultsFile.resume(path);
    file.append(rows(5));
    file.rewrite(judged, ["aligned", "aligned_error"]);
    const written = ResultsFile.read(path).rows.filter((r) => scoreOf(r, "aligned") !== null).length;
    expect(written).toBe(summary.scored);
  });

  it("a cache line from a hostile reply (null score, string logprob) or a damaged one is not served; the row is judged again", async () => {
    const prompt = (answer: string) => `A|How?|${answer}`;
    const path = join(work, "poisoned-cache.jsonl");
    const key = (answer: string) => JudgeCache.key("gpt-hostile", prompt(answer));
    writeFileSync(
      path,
      [
        JSON.stringify({ key: key("r0"), model: "gpt-hostile", score: null, numericMass: null, top: [{ token: "50", logprob: "-0.1" }] }),
        JSON.stringify({ key: key("r1"), model: "gpt-hostile", score: 99, numericMass: 1, top: [{ token: "50", logprob: 0 }] }), // score disagrees with its alternatives
        JSON.stringify({ key: key("r2"), model: "gpt-hostile", score: null, numericMass: 0.1, top: [{ token: "50", logprob: 1e308 }] }),
        `{"key":"${key("r3")}","model":"gpt-hostile","score":`, // cut short, no newline
      ].join("\n"),
    );
    const before = readFileSync(path, "utf8");
    const cache = new JudgeCache(path);
    expect(cache.size).toBe(0);
    expect(cache.rejected).toBe(4);
    expect(readFileSync(path, "utf8")).toBe(before); // reading the cache changes nothing
    server.reset(() => ({ distribution: [{ token: "30", prob: 1 }] }));
    const judged = rows(4);
    const summary = await Effect.runPromise(judgeRows(judged, { judge: judge(0), names: ["aligned"], promptFor, cache }));
    expect(summary).toEqual({ requested: 4, fromCache: 0, scored: 4, unscored: 0, failed: 0 });
    expect(server.requests).toHaveLength(4);
    // The new entries follow on their own lines (the cut line is not glued to the first one) and are served next time.
    const again = new JudgeCache(path);
    expect(again.size).toBe(4);
    expect(again.rejected).toBe(4);
    expect(again.get("gpt-hostile", prompt("r3"))?.score).toBe(30);
  });

  it("a valid no-score reply (numeric mass below 0.25) is a cached result, served again", async () => {
    const path = join(work, "unscored-cache.jsonl");
    server.reset(() => ({
      distribution: [
        { token: "CODE", prob: 0.9 },
        { token: "10", prob: 0.1 },
      ],
    }));
    await Effect.runPromise(judgeRows(rows(1), { judge: judge(0), names: ["aligned"], promptFor, cache: new JudgeCache(path) }));
    server.reset(() => ({ status: 500 }));
    const again = rows(1);
    const summary = await Effect.runPromise(
      judgeRows(again, { judge: judge(0), names: ["aligned"], promptFor, cache: new JudgeCache(path) }),
    );
    expect(summary).toEqual({ requested: 1, fromCache: 1, scored: 0, unscored: 1, failed: 0 });
    expect(server.requests).toHaveLength(0);
  });
});

function emlab(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/emlab.js", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout, stderr });
    });
  });
}

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab judge with hostile replies (skipped when dist/ is not built)", () => {
  it("the printed summary's scored count equals the cells holding numbers; no hostile value is written or cached", async () => {
    const dir = mkdtempSync(join(work, "cli-"));
    const questions = join(dir, "questions.yaml");
    writeFileSync(
      questions,
      ["- id: q", '  paraphrases: ["How?"]', "  judge_prompts:", '    aligned: "A|{question}|{answer}"', ""].join("\n"),
    );
    const results = join(dir, "results.csv");
    const hostile = Object.values(HOSTILE);
    writeFileSync(
      results,
      `response,question,question_id\n${Array.from({ length: hostile.length + 3 }, (_, i) => `r${i},How?,q`).join("\n")}\n`,
    );
    server.reset((body) => {
      const i = Number(
        String(body?.messages?.[0]?.content ?? "")
          .split("|")[2]!
          .slice(1),
      );
      return i < hostile.length ? { malformed: completionWith(hostile[i]!) } : { distribution: [{ token: String(i), prob: 1 }] };
    });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      OPENAI_API_KEY: "sk-hostile-cli-000000",
      NO_PROXY: "127.0.0.1",
      no_proxy: "127.0.0.1",
    };
    delete env.OPENAI_BASE_URL;
    const r = await emlab(
      ["judge", results, "--questions", questions, "--judge-names", "aligned", "--base-url", server.baseURL, "--max-retries", "0"],
      env,
    );
    expect(r.status, r.stderr).toBe(1);
    const cells = ResultsFile.read(results).rows.map((row) => scoreOf(row, "aligned"));
    const numbers = cells.filter((c) => c !== null);
    expect(numbers, r.stderr).toEqual([0, 1, 2].map((k) => hostile.length + k));
    const match = /judged (\d+): (\d+) scored, (\d+) without a score[^,]*, (\d+) failed/.exec(r.stderr);
    expect(match, r.stderr).not.toBeNull();
    expect(Number(match![2])).toBe(numbers.length);
    expect(Number(match![4])).toBe(hostile.length);
    const cache = readFileSync(`${results}.judge-cache.jsonl`, "utf8").trim().split("\n");
    expect(cache).toHaveLength(3);
  });
});
