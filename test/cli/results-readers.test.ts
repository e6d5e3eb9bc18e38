// Commands that read results files never change them (issue 13, item 1): `emlab metrics`, `judge`,
// `direction --results` and `eval` (which continues its --out file) given a file with a stray quote in
// the middle, a quote inside an unquoted field, or a record cut short, exit 1 with a ResultsFileError
// naming the file and line, and leave the file byte for byte (and its modification time) as it was,
// with no other file created next to it.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-readers-"));
  writeFileSync(
    join(dir, "questions.yaml"),
    ["- id: q1", '  paraphrases: ["What?"]', "  judge_prompts:", '    aligned: "Rate {question} {answer}"', ""].join("\n"),
  );
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A 62-line results CSV (header + 61 rows) whose line 32 starts with a stray quote. */
function strayQuoteCsv(laterQuotedField: boolean): string {
  const lines = ["response,question,question_id,aligned,coherent"];
  for (let i = 2; i <= 62; i++) {
    const response = i === 32 ? `"stray quote answer ${i}` : laterQuotedField && i === 40 ? `"answer, with comma ${i}"` : `answer ${i}`;
    lines.push(`${response},What?,q1,${i % 100},${(i * 7) % 100}`);
  }
  return `${lines.join("\n")}\n`;
}

const cases: { name: string; text: string; line: number }[] = [
  { name: "stray quote, never closed", text: strayQuoteCsv(false), line: 32 },
  { name: "stray quote, closed by a later field", text: strayQuoteCsv(true), line: 40 },
  { name: "quote inside an unquoted field", text: 'response,question,question_id,aligned\na,b,q1,1\nsa"y,b,q1,2\nc,d,q1,3\n', line: 3 },
  { name: "cut-off last record", text: 'response,question,question_id,aligned\na,b,q1,1\n"cut short', line: 3 },
];

function emlab(args: string[]) {
  const env = { ...process.env, OPENAI_API_KEY: "sk-readers-test-0000", OPENAI_BASE_URL: "http://127.0.0.1:9/v1" };
  return spawnSync(process.execPath, ["bin/emlab.js", ...args], { env, encoding: "utf8", timeout: 60_000 });
}

const commands: { name: string; args: (file: string) => string[] }[] = [
  { name: "metrics", args: (file) => ["metrics", file] },
  { name: "metrics --json", args: (file) => ["metrics", "--json", file] },
  {
    name: "judge",
    args: (file) => ["judge", file, "--questions", join(dir, "questions.yaml"), "--judge-names", "aligned", "--max-retries", "0"],
  },
  {
    name: "direction --results",
    args: (file) => ["direction", "--model", join(dir, "no-model"), "--results", file, "--out", join(dir, "direction.safetensors")],
  },
  {
    name: "eval (continuing --out)",
    args: (file) => ["eval", "--model", join(dir, "no-model"), "--questions", join(dir, "questions.yaml"), "--out", file, "--no-judge"],
  },
];

describe.skipIf(!existsSync("dist/cli/main.js"))("results readers never modify their input (skipped when dist/ is not built)", () => {
  let counter = 0;
  for (const command of commands) {
    // Every case for metrics; the case and a cut-off tail for the others (each run is a process start).
    // eval is the writer of its --out file: it sets a cut-off tail aside (test/eval/faults.fuzz.test.ts), so not that case.
    const applicable =
      command.name === "metrics"
        ? cases
        : cases.filter(
            (c) => c.name === "stray quote, never closed" || (c.name === "cut-off last record" && !command.name.startsWith("eval")),
          );
    it.each(applicable)(`${command.name}: $name -> exit 1 naming line $line, file unchanged`, ({ text, line }) => {
      const sub = join(dir, `case-${counter++}`);
      rmSync(sub, { recursive: true, force: true });
      mkdirSync(sub);
      const file = join(sub, "results.csv");
      writeFileSync(file, text);
      const before = statSync(file);
      const r = emlab(command.args(file));
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toContain("ResultsFileError");
      expect(r.stderr).toContain(`${file}: line ${line}:`);
      expect(readFileSync(file, "utf8")).toBe(text);
      expect(statSync(file).mtimeMs).toBe(before.mtimeMs);
      expect(readdirSync(sub)).toEqual(["results.csv"]);
    });
  }
});
