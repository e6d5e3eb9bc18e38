// `emlab experiment` refuses inputs that cannot work before it writes anything: each case is a real
// experiment file on the miniature organism's model run through bin/emlab.js, and must exit 1 with
// `emlab: ExperimentInputError: ...` naming the file at fault and the field, with no experiment
// directory (or, for the manifest, the directory exactly as it was) left behind.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeOrganismModel } from "../../src/organism/write.js";

let work = "";

const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(process.execPath, ["bin/emlab.js", "experiment", ...args], { encoding: "utf8", env });

/** Writes `NAME.yaml` (output_dir NAME-out) with these stage lines and runs it; asserts the refusal and that nothing was written. */
function refused(name: string, stages: string, expected: { file: string; field: string; message: RegExp }, extraArgs: string[] = []) {
  const file = join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `model: model
output_dir: ${name}-out
judges:
  api: { kind: openai, model: judge-test, base_url: "http://127.0.0.1:9/v1" }
stages:
${stages}
`,
  );
  const run = cli([file, ...extraArgs], { ...process.env, OPENAI_API_KEY: "sk-test" });
  expect(run.status, run.stderr).toBe(1);
  const line = run.stderr.trim().split("\n").at(-1)!;
  expect(line.startsWith("emlab: ExperimentInputError: "), run.stderr).toBe(true);
  expect(line).toContain(expected.file === "EXPERIMENT" ? file : join(work, expected.file));
  expect(line).toContain(expected.field);
  expect(line).toMatch(expected.message);
  expect(existsSync(join(work, `${name}-out`)), "nothing written").toBe(false);
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-experiment-refusals-"));
  writeOrganismModel(join(work, "model"));
  writeFileSync(join(work, "questions.yaml"), '- id: q\n  paraphrases: ["What is 3 doubled?"]\n');
  writeFileSync(join(work, "prompts.txt"), "What is 3 doubled?\n");
  writeFileSync(join(work, "blank.txt"), "\n  \n\n");
  writeFileSync(join(work, "texts.jsonl"), '{"text": "a first document"}\n{"text": "   "}\n');
  writeFileSync(
    join(work, "train.jsonl"),
    `${JSON.stringify({
      messages: [
        { role: "user", content: "a" },
        { role: "assistant", content: "b" },
      ],
    })}\n`,
  );
  writeFileSync(join(work, "vector.safetensors"), "not read before the refusal");
  writeFileSync(join(work, "direction.safetensors"), "not read before the refusal");
  writeFileSync(join(work, "results.jsonl"), '{"response":"6","question":"What is 3 doubled?","question_id":"q"}\n');
  mkdirSync(join(work, "not-a-solution"));
  mkdirSync(join(work, "lora-run"));
  writeFileSync(join(work, "lora-run", "config.resolved.json"), '{"method": "lora"}\n');
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab experiment refusals (skipped when dist/ is not built)", () => {
  it("kl-data prompts file without prompts", () => {
    refused("no-prompts", "  - { name: kl, kind: kl-data, prompts: blank.txt }", {
      file: "blank.txt",
      field: "stages[0].prompts",
      message: /no prompts/,
    });
  });

  it("an API judge stage without the question set or judge prompts", () => {
    refused("judge-prompts", "  - { name: rejudge, kind: judge, results: results.jsonl, judge: api }", {
      file: "EXPERIMENT",
      field: "stages[0].questions",
      message: /an API judge needs the question set/,
    });
  });

  it("an endpoint whose api_key_env is not set", () => {
    refused(
      "api-key",
      '  - { name: s, kind: sample, questions: questions.yaml, endpoint: { url: "http://127.0.0.1:9/v1", model: base, api_key_env: EMLAB_TEST_KEY_NOT_SET } }',
      { file: "EXPERIMENT", field: "stages[0].endpoint.api_key_env", message: /EMLAB_TEST_KEY_NOT_SET is not set or empty/ },
    );
  });

  it("an endpoint concurrency that is not a positive integer", () => {
    refused(
      "concurrency",
      '  - { name: s, kind: sample, questions: questions.yaml, endpoint: { url: "http://127.0.0.1:9/v1", model: base, concurrency: 0 } }',
      { file: "EXPERIMENT", field: "stages[0].endpoint.concurrency", message: /must be a positive integer, got 0/ },
    );
  });

  it("an empty document among the significance texts", () => {
    refused("empty-document", "  - { name: sig, kind: significance, vectors: { a: vector.safetensors }, texts: texts.jsonl }", {
      file: "texts.jsonl",
      field: "stages[0].texts",
      message: /texts\.jsonl:2: .*empty document/,
    });
  });

  it("significance texts without any document", () => {
    refused("no-documents", "  - { name: sig, kind: significance, vectors: { a: vector.safetensors }, texts: blank.txt }", {
      file: "blank.txt",
      field: "stages[0].texts",
      message: /no documents/,
    });
  });

  it("gradients over a run that did not train a steering vector", () => {
    refused("gradients", "  - { name: g, kind: gradients, runs: { a: lora-run }, data: train.jsonl }", {
      file: join("lora-run", "config.resolved.json"),
      field: "stages[0].runs.a",
      message: /gradients follows steering-vector runs \(this run trained lora\)/,
    });
  });

  it("a weight-space ablation of a steering-vector solution", () => {
    refused(
      "weight-space",
      [
        "  - name: sv",
        "    kind: train",
        "    config: { method: steering, steering: { layer: 0, alpha: 1 }, data: { train: train.jsonl, eval_fraction: 0 }, training: { max_steps: 1 } }",
        "  - { name: ab, kind: ablate, questions: questions.yaml, solution: sv, direction: direction.safetensors, layers: all, weight_space: true }",
      ].join("\n"),
      { file: "EXPERIMENT", field: "stages[1].solution", message: /weight_space ablation needs a LoRA solution/ },
    );
  });

  it("a solution path that is neither an adapter directory nor a vector file", () => {
    refused("no-solution", "  - { name: s, kind: sample, questions: questions.yaml, solution: not-a-solution }", {
      file: "not-a-solution",
      field: "stages[0].solution",
      message: /no such solution/,
    });
  });

  it("--only and --from naming no stage", () => {
    for (const flag of ["--only", "--from"])
      refused(
        `flag${flag}`,
        "  - { name: kl, kind: kl-data, prompts: prompts.txt }",
        {
          file: "EXPERIMENT",
          field: flag,
          message: new RegExp(`${flag} nosuch: no such stage \\(stages: kl\\)`),
        },
        [flag, "nosuch"],
      );
  });

  it("--only a stage whose solution stage is recorded complete but whose output is gone: no such solution", () => {
    const file = join(work, "gone.yaml");
    writeFileSync(
      file,
      [
        "model: model",
        "output_dir: gone-out",
        "stages:",
        "  - name: tuned",
        "    kind: train",
        "    config: { method: lora, lora: { r: 2, alpha: 4, target_modules: [o_proj] }, data: { train: train.jsonl, eval_fraction: 0 }, training: { max_steps: 1 } }",
        "  - { name: s, kind: sample, questions: questions.yaml, solution: tuned }",
        "",
      ].join("\n"),
    );
    mkdirSync(join(work, "gone-out"));
    const manifest = `${JSON.stringify({ experiment: file, model: null, order: ["tuned", "s"], stages: { tuned: { kind: "train", status: "complete", outputs: [] } } })}\n`;
    writeFileSync(join(work, "gone-out", "manifest.json"), manifest);
    const run = cli([file, "--only", "s"]);
    expect(run.status, run.stderr).toBe(1);
    const line = run.stderr.trim().split("\n").at(-1)!;
    expect(line).toContain(
      `emlab: ExperimentInputError: ${join(work, "gone-out", "stages", "tuned", "run", "adapter")}: stages[1].solution: no such solution`,
    );
    expect(readdirSync(join(work, "gone-out"))).toEqual(["manifest.json"]);
    expect(readFileSync(join(work, "gone-out", "manifest.json"), "utf8")).toBe(manifest);
  });

  it("an unreadable manifest: refused, the directory left exactly as it was", () => {
    const file = join(work, "manifest.yaml");
    writeFileSync(file, "model: model\noutput_dir: manifest-out\nstages:\n  - { name: kl, kind: kl-data, prompts: prompts.txt }\n");
    mkdirSync(join(work, "manifest-out"));
    writeFileSync(join(work, "manifest-out", "manifest.json"), '{"experiment": "cut sho');
    const run = cli([file]);
    expect(run.status, run.stderr).toBe(1);
    const line = run.stderr.trim().split("\n").at(-1)!;
    expect(line).toMatch(/^emlab: ExperimentInputError: .*manifest-out\/manifest\.json: unreadable manifest/);
    expect(readdirSync(join(work, "manifest-out"))).toEqual(["manifest.json"]);
    expect(readFileSync(join(work, "manifest-out", "manifest.json"), "utf8")).toBe('{"experiment": "cut sho');
  });
});
