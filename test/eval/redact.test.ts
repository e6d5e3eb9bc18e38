// No credential reaches anything emlab writes (issue 13, item 2): a real loopback server that echoes
// the request's headers, body and URL (query included) back in error bodies, in malformed replies and
// as the reply's tokens; the API key must appear in no error message, results cell (CSV and JSONL,
// `_error` and `_raw`), cache entry, stdout or stderr line. Also the redaction functions themselves.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JudgeCache } from "../../src/eval/judge/cache.js";
import { OpenAIJudge } from "../../src/eval/judge/openai.js";
import { redact, redactMessage, redactSecrets, registerSecret } from "../../src/eval/judge/redact.js";
import { judgeRows, promptsFrom } from "../../src/eval/judge/run.js";
import { type ResultRow, ResultsFile } from "../../src/eval/results.js";

const KEY = "sk-echo-SECRET-7f3a9c1e5b2d4f60";
const AZURE_KEY = "azure0SECRET0key0b71c2d3e4f5a6";
const URL_PASSWORD = "pw-SECRET-in-url-93e1";

/** How the echo server answers: the echo (headers, body, url) goes into each reply kind. */
type Mode = "error-400" | "error-500" | "malformed-200" | "token-echo" | "html-404";
let mode: Mode = "error-400";
let requests = 0;
let server: Server;
let base = "";
let work = "";

function echoOf(req: { headers: unknown; url?: string; method?: string }, body: string): Record<string, unknown> {
  return { method: req.method, url: req.url, headers: req.headers, body };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "emlab-redact-"));
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests++;
      const echo = echoOf(req, Buffer.concat(chunks).toString("utf8"));
      const authorization = String(req.headers.authorization ?? req.headers["api-key"] ?? "");
      if (mode === "error-400" || mode === "error-500") {
        res.writeHead(mode === "error-400" ? 400 : 500, { "content-type": "application/json", "x-echo-auth": authorization });
        res.end(
          JSON.stringify({ error: { message: `bad request; you sent ${JSON.stringify(echo)}`, type: "invalid_request_error", echo } }),
        );
      } else if (mode === "html-404") {
        res.writeHead(404, { "content-type": "text/html" });
        res.end(
          `<html><body>Not found: ${req.url} with ${authorization} and api-key=${authorization.replace(/^Bearer /, "")}</body></html>`,
        );
      } else if (mode === "malformed-200") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(`{"choices": [ {"oops": ${JSON.stringify(echo)}`);
      } else {
        // A valid completion whose alternatives are the key itself (and a numeric one).
        const key = authorization.replace(/^Bearer /, "");
        const top = [
          { token: key, logprob: Math.log(0.5), bytes: null },
          { token: `x${key}y`, logprob: Math.log(0.2), bytes: null },
          { token: "70", logprob: Math.log(0.3), bytes: null },
        ];
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            id: "c",
            object: "chat.completion",
            created: 0,
            model: "m",
            choices: [
              {
                index: 0,
                message: { role: "assistant", content: key },
                finish_reason: "length",
                logprobs: { content: [{ token: key, logprob: Math.log(0.5), bytes: null, top_logprobs: top }] },
              },
            ],
          }),
        );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => {
    server?.close(() => resolve());
    server?.closeAllConnections();
  });
  if (work) rmSync(work, { recursive: true, force: true });
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Asserts that none of the secrets (nor their URL-encoded forms) occurs in `text`. */
function expectClean(text: string, where: string, secrets: readonly string[] = [KEY]): void {
  for (const secret of secrets) {
    expect(text.includes(secret), `${where} contains a secret`).toBe(false);
    expect(text.includes(encodeURIComponent(secret)), `${where} contains an encoded secret`).toBe(false);
    // A long enough fragment counts as a leak too.
    expect(text.includes(secret.slice(4, 20)), `${where} contains part of a secret`).toBe(false);
  }
}

describe("redaction functions", () => {
  it("removes a registered secret in plain, URL-encoded and JSON-escaped forms; other text is untouched", () => {
    const secret = 'k3y/with+odd"chars\\and=more';
    registerSecret(secret);
    const text = `plain ${secret} url ${encodeURIComponent(secret)} json ${JSON.stringify(secret)} double ${JSON.stringify(JSON.stringify(secret))}`;
    const out = redactSecrets(text);
    expect(out).not.toContain(secret);
    expect(out).not.toContain(encodeURIComponent(secret));
    expect(out).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(out.startsWith("plain [REDACTED] url [REDACTED] json ")).toBe(true);
    expect(redactSecrets("nothing secret here: 42")).toBe("nothing secret here: 42");
  });

  it("masks credential-looking text it was not told about: Authorization, api-key, key= query, URL password, sk- keys", () => {
    const unknown = "sk-proj-UNKNOWNabcdefghijklmnop";
    const cases: [string, string][] = [
      ["authorization: Bearer abc.DEF-123", "abc.DEF-123"],
      ['{"authorization":"Bearer tok_987654"}', "tok_987654"],
      ['{"api-key":"az-1234567890"}', "az-1234567890"],
      ["api_key=qwerty12345&x=1", "qwerty12345"],
      ["GET /v1?key=ZZZ999secret&other=1", "ZZZ999secret"],
      ["http://bob:hunter2pass@example.com/v1", "hunter2pass"],
      [`Incorrect API key provided: ${unknown}.`, unknown],
      ['{\\"x-api-key\\":\\"esc4ped-secret\\"}', "esc4ped-secret"],
    ];
    for (const [text, secret] of cases) expect(redact(text), text).not.toContain(secret);
    // Ordinary judge traffic and messages survive.
    expect(redact("max token limit; invalid token in request")).toBe("max token limit; invalid token in request");
    expect(redact('{"max_tokens":1,"top_logprobs":20,"token":"50"}')).toBe('{"max_tokens":1,"top_logprobs":20,"token":"50"}');
  });

  it("redactMessage caps the length after redacting (no half key survives the cut)", () => {
    registerSecret(KEY);
    const long = `${"x".repeat(990)}${KEY}${"y".repeat(5000)}`;
    const out = redactMessage(long, 1000);
    expect(out.length).toBeLessThan(1100);
    expectClean(out, "capped message");
  });
});

describe("judge against a server that echoes credentials", () => {
  const templates = { aligned: "ALIGNED|{question}|{answer}" };
  const promptFor = promptsFrom(new Map([["q", templates]]));
  const rows = (): ResultRow[] => [
    { question_id: "q", question: "How?", response: "one" },
    { question_id: "q", question: "Why?", response: "two" },
  ];

  it.each(["error-400", "error-500", "malformed-200", "html-404"] as const)(
    "%s: the error cells, cache and files hold no key",
    async (m) => {
      mode = m;
      const dir = mkdtempSync(join(work, `${m}-`));
      const judge = new OpenAIJudge({
        model: "gpt-echo",
        baseURL: `${base}/v1`,
        apiKey: KEY,
        maxRetries: 1,
        baseDelayMs: 1,
        maxDelayMs: 5,
        timeoutMs: 5_000,
      });
      const cache = new JudgeCache(join(dir, "cache.jsonl"));
      const judged = rows();
      const summary = await Effect.runPromise(judgeRows(judged, { judge, names: ["aligned"], promptFor, cache }));
      expect(summary.failed).toBe(2);
      for (const row of judged) {
        expect(typeof row.aligned_error).toBe("string");
        expect(String(row.aligned_error).length).toBeGreaterThan(0);
        expectClean(String(row.aligned_error), "aligned_error");
        // The echo did reach the message (so the check above means something), masked.
        if (m === "error-400" || m === "error-500") expect(String(row.aligned_error)).toContain("[REDACTED]");
      }
      for (const ext of ["csv", "jsonl"]) {
        const file = ResultsFile.resume(join(dir, `results.${ext}`));
        file.append(rows());
        file.rewrite(judged, ["aligned", "aligned_error"]);
      }
      for (const path of filesUnder(dir)) expectClean(readFileSync(path, "utf8"), path);
    },
  );

  it("token-echo: a reply whose tokens are the key scores, but the key reaches neither _raw nor the cache", async () => {
    mode = "token-echo";
    const dir = mkdtempSync(join(work, "tokens-"));
    const judge = new OpenAIJudge({ model: "gpt-echo", baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0, timeoutMs: 5_000 });
    const judged = rows();
    const summary = await Effect.runPromise(
      judgeRows(judged, { judge, names: ["aligned"], promptFor, cache: new JudgeCache(join(dir, "cache.jsonl")) }),
    );
    expect(summary.scored).toBe(2);
    expect(judged[0]!.aligned).toBeCloseTo(70, 9); // only "70" is numeric
    const file = ResultsFile.resume(join(dir, "results.jsonl"));
    file.append(rows());
    file.rewrite(judged, ["aligned"]);
    for (const path of filesUnder(dir)) expectClean(readFileSync(path, "utf8"), path);
    // The cache still serves the result (the redacted tokens give back the same score).
    const again = rows();
    requests = 0;
    const second = await Effect.runPromise(
      judgeRows(again, { judge, names: ["aligned"], promptFor, cache: new JudgeCache(join(dir, "cache.jsonl")) }),
    );
    expect(requests).toBe(0);
    expect(second.fromCache).toBe(2);
    expect(again[0]!.aligned).toBeCloseTo(70, 9);
  });
});

/** Runs bin/emlab.js asynchronously (the server lives in this process). */
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

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab judge CLI against the echoing server (skipped when dist/ is not built)", () => {
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, NO_PROXY: "127.0.0.1", no_proxy: "127.0.0.1", ...extra };
    for (const k of ["OPENAI_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) delete e[k];
    if (!("OPENAI_API_KEY" in extra)) delete e.OPENAI_API_KEY;
    if (!("AZURE_OPENAI_API_KEY" in extra)) delete e.AZURE_OPENAI_API_KEY;
    return e;
  };
  const setup = (name: string) => {
    const dir = mkdtempSync(join(work, `cli-${name}-`));
    writeFileSync(
      join(dir, "questions.yaml"),
      ["- id: q", '  paraphrases: ["How?"]', "  judge_prompts:", '    aligned: "ALIGNED|{question}|{answer}"', ""].join("\n"),
    );
    const results = join(dir, "results.jsonl");
    writeFileSync(
      results,
      `${JSON.stringify({ response: "one", question: "How?", question_id: "q" })}\n${JSON.stringify({ response: "two", question: "How?", question_id: "q" })}\n`,
    );
    return { dir, results, questions: join(dir, "questions.yaml") };
  };
  const check = (dir: string, r: { stdout: string; stderr: string }, secrets: string[]) => {
    expectClean(r.stdout, "stdout", secrets);
    expectClean(r.stderr, "stderr", secrets);
    for (const path of filesUnder(dir)) expectClean(readFileSync(path, "utf8"), path, secrets);
  };

  it("OpenAI: the key echoed in a 400 body (headers, body, query) reaches no file and no output", async () => {
    mode = "error-400";
    const { dir, results, questions } = setup("openai");
    const r = await emlab(
      ["judge", results, "--questions", questions, "--judge-names", "aligned", "--base-url", `${base}/v1`, "--max-retries", "0"],
      env({ OPENAI_API_KEY: KEY }),
    );
    expect(r.status, r.stderr).toBe(1);
    const rows = ResultsFile.read(results).rows;
    expect(rows.every((row) => typeof row.aligned_error === "string" && String(row.aligned_error).includes("400"))).toBe(true);
    check(dir, r, [KEY]);
  });

  it("Azure: the api-key header echoed with the api-version query reaches no file and no output", async () => {
    mode = "error-400";
    const { dir, results, questions } = setup("azure");
    const r = await emlab(
      [
        "judge",
        results,
        "--questions",
        questions,
        "--judge-names",
        "aligned",
        "--azure-endpoint",
        base,
        "--judge-model",
        "dep",
        "--max-retries",
        "0",
      ],
      env({ AZURE_OPENAI_API_KEY: AZURE_KEY }),
    );
    expect(r.status, r.stderr).toBe(1);
    const rows = ResultsFile.read(results).rows;
    expect(String(rows[0]!.aligned_error)).toContain("api-version"); // the query was echoed, and kept
    check(dir, r, [AZURE_KEY]);
  });

  it("a password in --base-url reaches no file and no output", async () => {
    mode = "error-400";
    const { dir, results, questions } = setup("userinfo");
    const r = await emlab(
      [
        "judge",
        results,
        "--questions",
        questions,
        "--judge-names",
        "aligned",
        "--base-url",
        `http://user:${URL_PASSWORD}@127.0.0.1:${new URL(base).port}/v1`,
        "--max-retries",
        "0",
      ],
      env({ OPENAI_API_KEY: KEY }),
    );
    expect(r.status).not.toBe(0);
    check(dir, r, [KEY, URL_PASSWORD]);
  });
});
