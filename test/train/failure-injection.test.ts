// Failure injection for the training recipe: a failure at every set-up stage (model load, tokenizer,
// LoRA adapter creation, full-SFT reference copy, data, optimizer, first step) must release what the
// stages before it acquired: liveTensorCount() returns to its baseline. Real bad inputs where one
// exists (a corrupt safetensors file, a broken tokenizer.json, a bad data row, a target_modules regex
// or full.parameters pattern that matches nothing, a loss term that throws); the test-only
// FailTrainingAt seam for the stages no input can make fail (an out-of-memory copy, say).
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTraining, trainingProgram } from "../../src/recipes/train.js";
import { RunInputError } from "../../src/train/inputs.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { type RunConfig, resolveRunConfig } from "../../src/train/config.js";
import type { LossTerm } from "../../src/train/losses.js";
import { FailTrainingAt, type SetupStage } from "../../src/train/setup-stages.js";
import { makeTinyModel } from "../helpers/tiny-model.js";

const SPORTS = "test/fixtures/em/train/extreme_sports.head16.jsonl";

let work: string;
let modelDir: string;
let runs = 0;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-train-failures-", 0, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function config(overrides: Record<string, unknown> = {}, data: Record<string, unknown> = {}): RunConfig {
  const name = `run-${runs++}`;
  return resolveRunConfig(
    {
      model: modelDir,
      output_dir: join(work, name),
      method: "lora",
      lora: { r: 2, alpha: 4, target_modules: ["q_proj", "down_proj"] },
      data: { train: SPORTS, max_length: 64, ...data },
      training: { max_steps: 2, batch_size: 2, lr: 1e-3, save_steps: 1 },
      ...overrides,
    },
    `${name}.yaml`,
  );
}

/** A copy of the tiny model whose `file` is replaced by `edit(original bytes)`. */
function brokenModel(file: string, edit: (bytes: Buffer) => Buffer | string): string {
  const dir = join(work, `broken-${runs++}`);
  cpSync(modelDir, dir, { recursive: true });
  writeFileSync(join(dir, file), edit(readFileSync(join(dir, file))));
  return dir;
}

/** Runs the recipe, which must fail; returns the error and checks the live tensor count is back at its baseline. */
function failing(cfg: RunConfig, options: { failAt?: SetupStage; lossTerms?: readonly LossTerm[] } = {}): Error {
  const baseline = liveTensorCount();
  let program = trainingProgram(cfg, { lossTerms: options.lossTerms });
  if (options.failAt) program = program.pipe(Effect.provideService(FailTrainingAt, options.failAt));
  let error: unknown;
  try {
    Effect.runSync(program);
  } catch (e) {
    error = e;
  }
  expect(error, "the run fails").toBeInstanceOf(Error);
  expect(liveTensorCount(), `live tensors after: ${(error as Error).message}`).toBe(baseline);
  return error as Error;
}

describe("training set-up failures release everything acquired before them", () => {
  it("model load: a safetensors file cut short", () => {
    const dir = brokenModel("model.safetensors", (b) => b.subarray(0, Math.floor(b.length / 2)));
    const error = failing(config({ model: dir }));
    expect(error.message).toContain("model.safetensors");
  });

  it("tokenizer: a tokenizer.json that is not JSON (the model is loaded by then)", () => {
    const dir = brokenModel("tokenizer.json", () => "{ not json");
    const error = failing(config({ model: dir }));
    expect((error as { _tag?: string })._tag).toBe("TokenizerError");
    expect(error.message).toContain("tokenizer.json");
  });

  it("adapter creation: a target_modules regex that matches nothing", () => {
    const error = failing(config({ lora: { r: 2, alpha: 4, target_modules: "model\\.layers\\.\\d+\\.no_such_proj" } }));
    expect(error.message).toMatch(/targets no module/);
  });

  it("full SFT: a full.parameters pattern that matches nothing", () => {
    const cfg = config({ method: "full", full: { parameters: "^no_such_parameter$" } });
    const error = failing(cfg) as Error & { _tag?: string; field?: string };
    expect(error._tag).toBe("RunInputError");
    expect(error.field).toBe("full.parameters");
    expect(error.message).toMatch(/nothing to train/);
    // A failure in the error channel, not a defect: catchTag sees it.
    const caught = Effect.runSync(
      trainingProgram(cfg).pipe(Effect.catchTag("RunInputError", (e) => Effect.succeed(e instanceof RunInputError ? e.field : null))),
    );
    expect(caught).toBe("full.parameters");
  });

  it("data: a row that is not a chat (after model, tokenizer and adapters)", () => {
    const file = join(work, "bad-row.jsonl");
    const rows = readFileSync(SPORTS, "utf8").trim().split("\n");
    writeFileSync(file, `${[...rows.slice(0, 3), '{"messages": "not a list"}', ...rows.slice(3)].join("\n")}\n`);
    const error = failing(config({}, { train: file }));
    expect((error as { _tag?: string })._tag).toBe("DatasetError");
    expect(error.message).toContain(`${file}:4`);
  });

  for (const stage of ["model", "tokenizer", "method", "data", "optimizer", "first-step"] as const) {
    it(`injected failure at stage ${stage} (LoRA)`, () => {
      const error = failing(config(), { failAt: stage });
      expect((error as { _tag?: string })._tag).toBe("InjectedStageFailure");
      expect(error.message).toContain(stage);
    });
  }

  it("injected failure while loading the frozen reference copy (full SFT with KL)", () => {
    const cfg = config({
      method: "full",
      full: { parameters: "layers\\.1\\.mlp" },
      kl: { data: SPORTS, weight: 1, batch_size: 1, normalization: "token" },
      training: { max_steps: 1, batch_size: 1, lr: 1e-3 },
    });
    const error = failing(cfg, { failAt: "reference" });
    expect(error.message).toContain("reference");
    // The same run without the injected failure completes (the seam, not the config, made it fail).
    const before = liveTensorCount();
    expect(runTraining({ ...cfg, output_dir: `${cfg.output_dir}-ok` }).steps).toBe(1);
    expect(liveTensorCount()).toBe(before);
  });

  it("injected failure at the first step of a steering-vector run", () => {
    const error = failing(config({ method: "steering", steering: { layer: 1 } }), { failAt: "first-step" });
    expect(error.message).toContain("first-step");
  });

  it("first step: a loss term that throws inside the step", () => {
    const term: LossTerm = {
      name: "explodes",
      weight: 1,
      compute: () => {
        throw new RangeError("loss term exploded");
      },
    };
    const error = failing(config(), { lossTerms: [term] });
    expect(error.message).toBe("loss term exploded");
  });

  it("a typed failure is in the error channel: Effect.catchTag sees it", () => {
    const baseline = liveTensorCount();
    const recovered = Effect.runSync(
      trainingProgram(config({}, { train: join(work, "bad-row.jsonl") })).pipe(
        Effect.map(() => "trained"),
        Effect.catchTag("DatasetError", (e) => Effect.succeed(`caught ${e._tag}`)),
      ),
    );
    expect(recovered).toBe("caught DatasetError");
    expect(liveTensorCount()).toBe(baseline);
  });
});
