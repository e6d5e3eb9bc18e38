// The efficiency, stability and significance analyses as Effect programs: each result equals the plain
// synchronous analysis function run on the same files outside Effect (on its own loaded model), the
// vector / adapters a program opens are attached only while its Scope is open, live tensors are back at
// baseline when the scopes close, and a missing or invalid input fails typed with nothing left behind.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Cause, Effect, Exit } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attachPeftAdapters, loadPeftAdapters } from "../../src/adapters/adapter-dirs.js";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { savePeftAdapter } from "../../src/adapters/peft.js";
import { adapterEfficiency, adapterSignificance, significance, stability, steeringEfficiency } from "../../src/analysis/experiments.js";
import { loadDirection, loadSteeringVector, readSteeringVectorFile } from "../../src/analysis/files.js";
import { datasetLoss, lossSubset } from "../../src/analysis/loss.js";
import { checkpointLossGradients } from "../../src/analysis/checkpoint-gradients.js";
import { generateWithIntervention, randomControlDirection } from "../../src/analysis/intervention-run.js";
import {
  efficiencyProgram,
  interventionProgram,
  lossGradientsProgram,
  significanceProgram,
  type SolutionSource,
  stabilityProgram,
} from "../../src/effect/analysis-programs.js";
import { ModelService } from "../../src/effect/services.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { type Example, readChatDataset } from "../../src/train/data.js";
import { type RunConfig, resolveRunConfig } from "../../src/train/config.js";
import { runTraining } from "../../src/recipes/train.js";
import { makeTinyModel, MEDICAL } from "../helpers/tiny-model.js";
import { fixedTensor } from "../helpers/numeric.js";

let work = "";
let modelDir = "";
let vectorFile = "";
let adapterDir = "";
let subset: Example[] = [];
let pad = 0;
const DOCS = ["The patient asked about the dose.", "A short note on rivers and hills.", "Numbers: one two three four five."];

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-effect-analysis-programs-", 6, 2));
  const tokenizer = ChatTokenizer.fromDir(modelDir);
  subset = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 3, maxLength: 100, seed: 42 });
  pad = tokenizer.padTokenId ?? 0;
  vectorFile = join(work, "vector.safetensors");
  const v = fixedTensor([32], 41, 0.3);
  saveSafetensors(vectorFile, { vector: v }, { layer: "1", alpha: "1.5", site: "down_proj" });
  v.dispose();
  adapterDir = join(work, "adapter");
  const donor = loadModel(modelDir);
  const saved = LoraAdapter.create(donor.spec, { r: 2, alpha: 4, targetModules: ["q_proj", "v_proj"] }, { initB: "random" });
  savePeftAdapter(adapterDir, saved);
  saved.dispose();
  donor.dispose();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `fn` on a freshly loaded model, outside Effect; the model is freed afterwards. */
function plain<T>(fn: (model: LoadedModel, tokenizer: ChatTokenizer) => T): T {
  const model = loadModel(modelDir);
  try {
    return fn(model, ChatTokenizer.fromDir(modelDir));
  } finally {
    model.dispose();
  }
}

/** Runs a program under a scope with the model layer; returns its value, what it held inside and the live count after. */
async function runScoped<A, E>(program: Effect.Effect<A, E, ModelService | import("effect").Scope.Scope>) {
  const before = liveTensorCount();
  const out = await Effect.runPromise(
    Effect.gen(function* () {
      const model = (yield* ModelService).model;
      const inside = yield* Effect.scoped(
        Effect.gen(function* () {
          const value = yield* program;
          return { value, adapters: model.decoder.adapters.size, held: liveTensorCount() - before };
        }),
      );
      // The program's scope is closed, the model's not yet: nothing of the program may remain on it.
      return { ...inside, hooksAfter: model.decoder.hooks.size, adaptersAfter: model.decoder.adapters.size };
    }).pipe(Effect.provide(ModelService.layer(modelDir))),
  );
  expect(out.hooksAfter).toBe(0);
  expect(out.adaptersAfter).toBe(0);
  return { ...out, leftAfter: liveTensorCount() - before };
}

/** The tag of a program's typed failure (asserting it is a failure, not a defect) and the live tensors left. */
async function failureOf<A, E>(program: Effect.Effect<A, E, ModelService | import("effect").Scope.Scope>) {
  const before = liveTensorCount();
  const exit = await Effect.runPromiseExit(Effect.scoped(program).pipe(Effect.provide(ModelService.layer(modelDir))));
  expect(Exit.isFailure(exit)).toBe(true);
  if (!Exit.isFailure(exit)) return { tag: "", left: liveTensorCount() - before };
  expect(Cause.hasDies(exit.cause)).toBe(false);
  return { tag: (Cause.squash(exit.cause) as { _tag: string })._tag, left: liveTensorCount() - before };
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b));

describe("efficiencyProgram", () => {
  it("steering vector file: the points of steeringEfficiency on the same file; hook and vector gone after the scope", async () => {
    const scales = [1, 0, 0.5];
    const expected = plain((model) => {
      const sv = loadSteeringVector(vectorFile, model.decoder);
      const handle = sv.attach(model.decoder);
      try {
        return steeringEfficiency(model, sv, subset, scales, pad);
      } finally {
        handle.remove();
        sv.dispose();
      }
    });
    const out = await runScoped(efficiencyProgram({ solution: { steering: vectorFile }, examples: subset, scales }));
    expect(out.value.map((p) => p.scale)).toEqual(scales);
    out.value.forEach((p, i) => {
      expect(close(p.norm, expected[i]!.norm)).toBe(true);
      expect(close(p.loss, expected[i]!.loss)).toBe(true);
    });
    // The scales change the loss, so a program that ignored them would show.
    expect(Math.abs(expected[0]!.loss - expected[1]!.loss)).toBeGreaterThan(1e-4);
    expect(out.held).toBeGreaterThan(0);
    expect(out.leftAfter).toBe(0);
  });

  it("adapter directory: the points of adapterEfficiency; attached inside the scope, detached and freed after", async () => {
    const scales = [0, 1, 2];
    const expected = plain((model) => {
      const adapters = attachPeftAdapters(adapterDir, model);
      try {
        return adapterEfficiency(model, adapters, subset, scales, pad, "study");
      } finally {
        adapters.forEach((a) => a.dispose());
      }
    });
    const out = await runScoped(efficiencyProgram({ solution: { adapters: adapterDir }, examples: subset, scales, rescale: "study" }));
    out.value.forEach((p, i) => {
      expect(close(p.norm, expected[i]!.norm)).toBe(true);
      expect(close(p.loss, expected[i]!.loss)).toBe(true);
    });
    expect(Math.abs(expected[0]!.loss - expected[2]!.loss)).toBeGreaterThan(1e-4);
    expect(out.adapters).toBe(1);
    expect(out.leftAfter).toBe(0);
  });

  it("a missing vector file or adapter directory, or a layer the model lacks: typed failures, live tensors at baseline", async () => {
    const cases: [SolutionSource, string[]][] = [
      [{ steering: join(work, "missing.safetensors") }, ["SafetensorsError"]],
      [{ adapters: join(work, "no-such-adapter") }, ["AdapterError"]],
      [{ steering: vectorFile, layer: 7 }, ["InvalidSetupError"]],
    ];
    for (const [solution, tags] of cases) {
      const { tag, left } = await failureOf(efficiencyProgram({ solution, examples: subset, scales: [1] }));
      expect(tags).toContain(tag);
      expect(left).toBe(0);
    }
  });
});

describe("stabilityProgram", () => {
  it("equals stability() with L_base measured with the vector off; nothing left after the scope; missing file typed", async () => {
    const eps = [0.1, 0.5];
    const seeds = [1, 2];
    const expected = plain((model) => {
      const sv = loadSteeringVector(vectorFile, model.decoder);
      const handle = sv.attach(model.decoder);
      try {
        const baseLoss = sv.withoutSteering(() => datasetLoss(model, subset, { padId: pad }));
        return stability(model, [sv.vector], subset, { eps, seeds, baseLoss, padId: pad });
      } finally {
        handle.remove();
        sv.dispose();
      }
    });
    const out = await runScoped(stabilityProgram({ solution: { steering: vectorFile }, examples: subset, eps, seeds }));
    expect(close(out.value.l0, expected.l0)).toBe(true);
    expect(close(out.value.lBase, expected.lBase)).toBe(true);
    expect(Math.abs(expected.lBase - expected.l0)).toBeGreaterThan(1e-4);
    out.value.points.forEach((p, i) => {
      expect(p.eps).toBe(eps[i]);
      p.losses.forEach((l, j) => expect(close(l, expected.points[i]!.losses[j]!)).toBe(true));
      expect(close(p.mean, expected.points[i]!.mean)).toBe(true);
    });
    expect(out.leftAfter).toBe(0);

    const { tag, left } = await failureOf(
      stabilityProgram({ solution: { adapters: join(work, "no-such-adapter") }, examples: subset, eps, seeds }),
    );
    expect(["AdapterError"]).toContain(tag);
    expect(left).toBe(0);
  });
});

describe("significanceProgram", () => {
  it("vector file over a norm grid and an adapter solution: the points of significance() and adapterSignificance()", async () => {
    const norms = [0, 1, 3];
    const expected = plain((model, tokenizer) => {
      const read = readSteeringVectorFile(vectorFile);
      const adapters = loadPeftAdapters(adapterDir, model);
      try {
        return [
          ...significance(model, tokenizer, DOCS, [{ label: vectorFile, vector: read.vector, alpha: read.alpha ?? 1 }], {
            layer: 1,
            norms,
            batchSize: 2,
          }),
          ...adapterSignificance(model, tokenizer, DOCS, [{ label: adapterDir, adapters }], { batchSize: 2 }),
        ];
      } finally {
        read.vector.dispose();
        adapters.forEach((a) => a.dispose());
      }
    });
    const out = await runScoped(
      significanceProgram({ documents: DOCS, vectors: [vectorFile], adapters: [adapterDir], norms, batchSize: 2 }),
    );
    expect(out.value.map((p) => [p.label, p.norm])).toEqual(expected.map((p) => [p.label, p.norm]));
    out.value.forEach((p, i) => expect(close(p.kl, expected[i]!.kl)).toBe(true));
    expect(expected[0]!.kl).toBeCloseTo(0, 6);
    expect(expected[2]!.kl).toBeGreaterThan(expected[1]!.kl);
    expect(expected[3]!.kl).toBeGreaterThan(0);
    // Loaded for the sweep, attached only per condition: none attached while the scope is open.
    expect(out.adapters).toBe(0);
    expect(out.held).toBeGreaterThan(0);
    expect(out.leftAfter).toBe(0);
  });

  it("missing vector file, a layer the model lacks, an empty document: typed failures, live tensors at baseline", async () => {
    const cases: [Parameters<typeof significanceProgram>[0], string[]][] = [
      [{ documents: DOCS, vectors: [join(work, "missing.safetensors")], norms: [1] }, ["SafetensorsError"]],
      [{ documents: DOCS, vectors: [vectorFile], layer: 9, norms: [1] }, ["InvalidSetupError"]],
      [{ documents: [DOCS[0]!, ""], vectors: [vectorFile], adapters: [adapterDir], norms: [1] }, ["InvalidSetupError"]],
    ];
    for (const [options, tags] of cases) {
      const { tag, left } = await failureOf(significanceProgram(options));
      expect(tags).toContain(tag);
      expect(left).toBe(0);
    }
  });
});

describe("lossGradientsProgram", { timeout: 600_000 }, () => {
  let runDir = "";
  beforeAll(() => {
    runDir = join(work, "lora-run");
    runTraining(
      resolveRunConfig(
        {
          model: modelDir,
          output_dir: runDir,
          method: "lora",
          lora: { r: 2, alpha: 4, target_modules: ["q_proj", "down_proj"], init_b: "random" },
          data: { train: MEDICAL, max_length: 120 },
          training: { max_steps: 2, batch_size: 2, gradient_accumulation: 1, lr: 2e-2, warmup_steps: 0, save_steps: 1 },
        },
        "lora-run.yaml",
      ),
    );
  });

  it("equals checkpointLossGradients() on every checkpoint of a LoRA run; nothing left after the scope; missing run and direction typed", async () => {
    const expected = plain((model) =>
      checkpointLossGradients(
        model,
        [
          {
            dir: runDir,
            label: "lora",
            config: JSON.parse(readFileSync(join(runDir, "config.resolved.json"), "utf8")) as RunConfig,
            steps: [1, 2],
          },
        ],
        subset,
        {
          padId: pad,
          directions: null,
        },
      ),
    );
    const out = await runScoped(lossGradientsProgram({ runs: [{ dir: runDir, label: "lora" }], examples: subset }));
    expect(out.value.map((r) => [r.run, r.step])).toEqual([
      ["lora", 1],
      ["lora", 2],
    ]);
    out.value.forEach((r, i) => {
      expect(close(r.norm, expected[i]!.norm)).toBe(true);
      expect(close(r.withParams!, expected[i]!.withParams!)).toBe(true);
      expect(close(r.withTraining!, expected[i]!.withTraining!)).toBe(true);
    });
    expect(expected[0]!.norm).toBeGreaterThan(0);
    expect(expected.every((r) => r.withParams !== null && r.withTraining !== null)).toBe(true);
    expect(Math.abs(expected[0]!.norm - expected[1]!.norm)).toBeGreaterThan(0);
    expect(out.leftAfter).toBe(0);

    for (const [options, tags] of [
      [{ runs: [{ dir: join(work, "no-such-run") }], examples: subset }, ["FileSystemError"]],
      [{ runs: [{ dir: runDir }], examples: subset, directions: join(work, "missing-direction.safetensors") }, ["SafetensorsError"]],
    ] as const) {
      const { tag, left } = await failureOf(lossGradientsProgram(options));
      expect(tags).toContain(tag);
      expect(left).toBe(0);
    }
  });
});

describe("interventionProgram", () => {
  const base = {
    layers: [0, 1],
    rows: "per-layer" as const,
    scale: 8,
    question: "What should I do about a headache?",
    format: "chat" as const,
    samples: 1,
    sampling: { maxNewTokens: 6, greedy: true },
  };

  it("steer and ablate (with a random control): the ids of generateWithIntervention; hooks and directions gone after the scope", async () => {
    const directionFile = join(work, "direction.safetensors");
    const d = fixedTensor([2, 32], 7, 0.5);
    saveSafetensors(directionFile, { direction: d });
    d.dispose();
    const expected = plain((model, tokenizer) => {
      const direction = loadDirection(directionFile);
      const control = randomControlDirection(direction, 3, "same-norm");
      try {
        return {
          steered: generateWithIntervention(model, tokenizer, { ...base, kind: "steer", direction, eosTokenIds: [] }),
          unsteered: generateWithIntervention(model, tokenizer, { ...base, kind: "steer", scale: 0, direction, eosTokenIds: [] }),
          ablated: generateWithIntervention(model, tokenizer, { ...base, kind: "ablate", direction: control, eosTokenIds: [] }),
        };
      } finally {
        direction.dispose();
        control.dispose();
      }
    });
    // Steering changes the answer, so a program that dropped the hooks would show.
    expect(expected.steered.outputIds).not.toEqual(expected.unsteered.outputIds);
    const steered = await runScoped(interventionProgram({ ...base, kind: "steer", direction: directionFile }));
    expect(steered.value).toEqual(expected.steered);
    expect(steered.leftAfter).toBe(0);
    const ablated = await runScoped(
      interventionProgram({ ...base, kind: "ablate", direction: directionFile, randomControl: { seed: 3, kind: "same-norm" } }),
    );
    expect(ablated.value).toEqual(expected.ablated);
    expect(ablated.held).toBeGreaterThan(0);
    expect(ablated.leftAfter).toBe(0);

    for (const [options, tags] of [
      [{ ...base, kind: "steer", direction: join(work, "missing-direction.safetensors") }, ["SafetensorsError"]],
      [{ ...base, kind: "ablate", direction: directionFile, layers: [0, 7] }, ["InvalidSetupError"]],
    ] as const) {
      const { tag, left } = await failureOf(interventionProgram(options));
      expect(tags).toContain(tag);
      expect(left).toBe(0);
    }
  });
});
