// `emlab train` refusing a run a user asked for (bin/emlab.js as a child process, a tiny random Qwen2
// with the real Qwen2.5 tokenizer): an output directory that already holds a run, --resume with a
// changed config, a method that matches no parameter, a training set left empty by the held-out split.
// Each is a typed error printed as `emlab: TAG: message` (naming the file or field) with exit code 1,
// and the output directory is left as it was.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { SPORTS, trainSync, writeRunConfig } from "../helpers/train-child.js";

let work = "";
let modelDir = "";

const configFile = (name: string, lines: { method?: string[]; train?: string; evalFraction?: number } = {}) =>
  writeRunConfig(work, name, modelDir, {
    method: lines.method ?? ["method: lora", "lora: { r: 2, alpha: 4, target_modules: [q_proj] }"],
    data: `{ train: ${lines.train ?? SPORTS}, max_length: 64${lines.evalFraction === undefined ? "" : `, eval_fraction: ${lines.evalFraction}`} }`,
    training: "{ max_steps: 2, batch_size: 2, lr: 1.0e-2, save_steps: 1000, seed: 7 }",
  });
const train = trainSync;
const listing = (dir: string) => readdirSync(dir).sort();

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-train-refusals-", 0, 2));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab train refusals (skipped when dist/ is not built)", () => {
  it("an output_dir that already holds a run: RunDirectoryError, exit 1, the directory untouched", () => {
    const file = configFile("taken");
    const out = join(work, "taken");
    mkdirSync(out);
    writeFileSync(join(out, "metrics.jsonl"), '{"step":1}\n');
    const r = train(file);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: RunDirectoryError: ${out} already holds a run`);
    expect(listing(out)).toEqual(["metrics.jsonl"]);
    expect(readFileSync(join(out, "metrics.jsonl"), "utf8")).toBe('{"step":1}\n');
  });

  it("--resume with a config that differs from the run's: RunDirectoryError naming config.resolved.json", () => {
    const file = configFile("changed");
    const out = join(work, "changed");
    mkdirSync(out);
    writeFileSync(join(out, "config.resolved.json"), '{"training":{"lr":0.5}}\n');
    const r = train(file, "--resume");
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      `emlab: RunDirectoryError: ${out}: --resume with a config that differs from ${join(out, "config.resolved.json")}`,
    );
    expect(listing(out)).toEqual(["config.resolved.json"]);
  });

  it("full SFT whose parameters pattern matches nothing: RunInputError naming full.parameters", () => {
    const r = train(configFile("nothing", { method: ["method: full", "full: { parameters: '^no_such_parameter$' }"] }));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: RunInputError: nothing to train: no parameter of ${modelDir} matched full.parameters`);
    expect(existsSync(join(work, "nothing", "metrics.jsonl"))).toBe(false);
  });

  it("a training set the held-out split leaves empty: RunInputError naming the data file", () => {
    const one = join(work, "one-row.jsonl");
    writeFileSync(one, `${readFileSync(SPORTS, "utf8").split("\n")[0]}\n`);
    const r = train(configFile("empty", { train: one, evalFraction: 0.5 }));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: RunInputError: ${one}: no training examples`);
    expect(existsSync(join(work, "empty", "metrics.jsonl"))).toBe(false);
  });
});
