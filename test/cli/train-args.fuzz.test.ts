// Property-based test of `emlab train`'s argument parsing (src/cli/train.ts): argument lists built from
// option-like tokens, arbitrary strings and config files that are missing, unreadable, malformed or
// out of range. None of them may start a run: each ends in a usage error (exit 2), a typed error
// naming the file (exit 1), or with --help / -h the help text (exit 0), classified as main()
// classifies them; nothing is written. A few of the
// cases also run through bin/emlab.js in a child process to check the exit codes for real.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../../src/cli/args.js";
import { runTrain } from "../../src/cli/train.js";
import { fuzzParameters } from "../helpers/fuzz-budget.js";

let dir = "";
let configs: string[] = [];
const outputDir = (): string => join(dir, "out");

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-train-args-"));
  const base = `model: ${join(dir, "no-model")}\noutput_dir: ${outputDir()}\nmethod: lora\nlora: { r: 1, alpha: 1, target_modules: [q_proj] }\ndata: { train: t.jsonl }\n`;
  const bodies: Record<string, string> = {
    "nan-lr.yaml": `${base}training: { lr: .nan }\n`,
    "negative-steps.yaml": `${base}training: { max_steps: -5 }\n`,
    "fraction-batch.json": JSON.stringify({
      model: "m",
      output_dir: outputDir(),
      method: "lora",
      lora: { r: 1, alpha: 1, target_modules: ["q_proj"] },
      data: { train: "t" },
      training: { batch_size: 1.5 },
    }),
    "escape.yaml": `${base.replace("target_modules: [q_proj] }", "target_modules: [q_proj], name: ../../../escape-adapter }")}`,
    "broken.yaml": "model: [unclosed\n",
    "broken.json": '{"model": ',
    "empty.yaml": "",
    "list.yaml": "- 1\n- 2\n",
    "unknown-key.yaml": `${base}colour: blue\n`,
  };
  configs = Object.entries(bodies).map(([name, body]) => {
    writeFileSync(join(dir, name), body);
    return join(dir, name);
  });
  mkdirSync(join(dir, "a-directory.yaml"));
  configs.push(join(dir, "a-directory.yaml"), join(dir, "missing.yaml"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Outcome = "usage" | "typed" | "help" | "ran" | "crash";

const asksForHelp = (argv: readonly string[]): boolean => argv.some((a) => a === "--help" || a === "-h");

/** How main() would report `argv`: usage (exit 2), a typed error (exit 1), help printed (exit 0), or anything else. */
async function outcomeOf(argv: string[]): Promise<{ outcome: Outcome; error?: unknown }> {
  try {
    const write = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write;
    try {
      await runTrain(argv);
    } finally {
      process.stdout.write = write;
    }
    return { outcome: asksForHelp(argv) ? "help" : "ran" };
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) return { outcome: "usage", error };
    if (typeof (error as { _tag?: unknown })._tag === "string") return { outcome: "typed", error };
    return { outcome: "crash", error };
  }
}

const token = fc.oneof(
  fc.constantFrom(
    "--resume",
    "--resume=true",
    "--resume=false",
    "--no-resume",
    "-r",
    "--",
    "-",
    "--out",
    "--help",
    "--resume --resume",
    "",
  ),
  fc.string({ maxLength: 12 }),
  fc.string({ maxLength: 8 }).map((s) => `--${s}`),
);

describe("train argument fuzz", () => {
  it("random argument lists with invalid configs: a usage or typed error, never a run, nothing written", async () => {
    const seen: Record<Outcome, number> = { usage: 0, typed: 0, help: 0, ran: 0, crash: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(token, fc.constantFrom(...configs)), { maxLength: 5 }), async (argv) => {
        const { outcome, error } = await outcomeOf(argv);
        seen[outcome]++;
        expect(outcome === "usage" || outcome === "typed" || outcome === "help", `${JSON.stringify(argv)}: ${String(error)}`).toBe(true);
        expect(existsSync(outputDir())).toBe(false);
      }),
      fuzzParameters(400),
    );
    expect(seen.usage).toBeGreaterThan(0);
    expect(seen.typed).toBeGreaterThan(0);
    console.log(
      `train argument fuzz: ${seen.usage} usage errors, ${seen.typed} typed errors, ${seen.help} help texts, ${seen.ran} runs, ${seen.crash} crashes`,
    );
  });

  it("each invalid config alone is a typed error naming its file", async () => {
    for (const file of configs) {
      const { outcome, error } = await outcomeOf([file]);
      expect(outcome, `${file}: ${String(error)}`).toBe("typed");
      expect((error as Error).message).toContain(file);
      expect((await outcomeOf([file, "--resume"])).outcome).toBe("typed");
    }
    expect(existsSync(outputDir())).toBe(false);
  });

  it("through bin/emlab.js: exit 2 for usage errors, 1 for invalid configs, a message on stderr, nothing on stdout", () => {
    if (!existsSync("dist/cli/main.js")) throw new Error("dist/ is missing: run npx tsc -p tsconfig.build.json first");
    const cases: [string[], number][] = [
      [["train"], 2],
      [["train", "--bogus", configs[0]!], 2],
      [["train", configs[0]!], 1],
      [["train", "--resume", configs[3]!], 1],
    ];
    for (const [argv, code] of cases) {
      const run = spawnSync(process.execPath, ["bin/emlab.js", ...argv], { encoding: "utf8", timeout: 60_000 });
      expect(run.status, `${argv.join(" ")}: ${run.stderr}`).toBe(code);
      expect(run.stdout).toBe("");
      expect(run.stderr).toMatch(/^emlab: /);
    }
    expect(readdirSync(dir).includes("out")).toBe(false);
  });
});
