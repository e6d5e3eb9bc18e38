// The analyses as Effect programs (efficiency, stability, significance, loss gradients, steer / ablate,
// compare-norms, trajectories / PCA, monitor): each result equals the plain
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
import {
  adapterEfficiency,
  adapterSignificance,
  compareAtEqualNorm,
  significance,
  stability,
  steeringEfficiency,
} from "../../src/analysis/experiments.js";
import { loadDirection, loadSteeringVector, readSteeringVectorFile } from "../../src/analysis/files.js";
import { datasetLoss, lossSubset } from "../../src/analysis/loss.js";
import { checkpointLossGradients } from "../../src/analysis/checkpoint-gradients.js";
import { generateWithIntervention, randomControlDirection } from "../../src/analysis/intervention-run.js";
import { studyUnitRandomVectors } from "../../src/analysis/interventions.js";
import { monitorGeneration } from "../../src/analysis/monitor.js";
import { openNormSolution } from "../../src/analysis/solution-handles.js";
import { disposeTrajectory, jointPca, readRunTrajectory, type TrajectoryRow, trajectoryRows } from "../../src/analysis/trajectories.js";
import {
  compareNormsProgram,
  efficiencyProgram,
  interventionProgram,
  lossGradientsProgram,
  significanceProgram,
  type SolutionSource,
  stabilityProgram,
} from "../../src/effect/analysis-programs.js";
import { monitorProgram } from "../../src/effect/monitor-program.js";
import { ModelService } from "../../src/effect/services.js";
import { trajectoriesProgram } from "../../src/effect/trajectory-program.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { keep, liveTensorCount, tidy } from "../../src/tensor/index.js";
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
      [{ steering: vectorFile, layer: 7 }, ["DirectionError"]],
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
    expect(out.value.points.map((p) => [p.label, p.norm])).toEqual(expected.map((p) => [p.label, p.norm]));
    out.value.points.forEach((p, i) => expect(close(p.kl, expected[i]!.kl)).toBe(true));
    expect(out.value.vectors).toEqual([{ label: vectorFile, alpha: 1.5 }]);
    expect(out.value.adapters).toEqual([adapterDir]);
    expect(out.value.layer).toBe(1);
    expect(expected[0]!.kl).toBeCloseTo(0, 6);
    expect(expected[2]!.kl).toBeGreaterThan(expected[1]!.kl);
    expect(expected[3]!.kl).toBeGreaterThan(0);
    // Loaded for the sweep, attached only per condition: none attached while the scope is open.
    expect(out.adapters).toBe(0);
    expect(out.held).toBeGreaterThan(0);
    expect(out.leftAfter).toBe(0);
  });

  it("a vector file with a study random control: the points of significance() on the file's vector and studyUnitRandomVectors()", async () => {
    const norms = [0, 2];
    const expected = plain((model, tokenizer) => {
      const read = readSteeringVectorFile(vectorFile);
      const [control] = studyUnitRandomVectors(32, 1, 42);
      try {
        return significance(
          model,
          tokenizer,
          DOCS,
          [
            { label: vectorFile, vector: read.vector, alpha: 1.5 },
            { label: "random-0", vector: control!, alpha: 1.5 },
          ],
          { layer: 1, norms, batchSize: 2 },
        );
      } finally {
        read.vector.dispose();
        control!.dispose();
      }
    });
    const out = await runScoped(
      significanceProgram({ documents: DOCS, vectors: [vectorFile], random: { count: 1, kind: "study", seed: 42 }, norms, batchSize: 2 }),
    );
    expect(out.value.vectors).toEqual([
      { label: vectorFile, alpha: 1.5 },
      { label: "random-0", alpha: 1.5 },
    ]);
    expect(out.value.points.map((p) => [p.label, p.norm])).toEqual(expected.map((p) => [p.label, p.norm]));
    out.value.points.forEach((p, i) => expect(close(p.kl, expected[i]!.kl)).toBe(true));
    // The control is not the vector: their KLs at norm 2 differ.
    expect(Math.abs(expected[1]!.kl - expected[3]!.kl)).toBeGreaterThan(1e-9);
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

/** A real 2-step LoRA run (checkpoints at steps 1 and 2), trained once for the run-reading programs. */
let trainedRun = "";
function loraRun(): string {
  if (trainedRun === "") {
    trainedRun = join(work, "lora-run");
    runTraining(
      resolveRunConfig(
        {
          model: modelDir,
          output_dir: trainedRun,
          method: "lora",
          lora: { r: 2, alpha: 4, target_modules: ["q_proj", "down_proj"], init_b: "random" },
          data: { train: MEDICAL, max_length: 120 },
          training: { max_steps: 2, batch_size: 2, gradient_accumulation: 1, lr: 2e-2, warmup_steps: 0, save_steps: 1 },
        },
        "lora-run.yaml",
      ),
    );
  }
  return trainedRun;
}

describe("lossGradientsProgram", { timeout: 600_000 }, () => {
  let runDir = "";
  beforeAll(() => {
    runDir = loraRun();
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

describe("compareNormsProgram", () => {
  it("a vector file against an adapter directory: the reference, norms and points of compareAtEqualNorm(); nothing left after the scope", async () => {
    const scales = [0.5, 1, 2];
    const expected = plain((model) => {
      const narrow = openNormSolution(vectorFile, model, undefined, "study");
      const general = openNormSolution(adapterDir, model, undefined, "study");
      try {
        return {
          narrowNorm: narrow.norm,
          generalNorm: general.norm,
          ...compareAtEqualNorm(model, narrow, general, subset, scales, { padId: pad }),
        };
      } finally {
        narrow.close();
        general.close();
      }
    });
    const out = await runScoped(
      compareNormsProgram({ narrow: vectorFile, general: adapterDir, examples: subset, scales, rescale: "study" }),
    );
    expect(close(out.value.reference, expected.reference)).toBe(true);
    expect(close(out.value.narrowNorm, expected.narrowNorm)).toBe(true);
    expect(close(out.value.generalNorm, expected.generalNorm)).toBe(true);
    // The reference is the mean of the two norms (closed form), and both are positive.
    expect(close(expected.reference, (expected.narrowNorm + expected.generalNorm) / 2)).toBe(true);
    expect(out.value.points.length).toBe(scales.length);
    out.value.points.forEach((p, i) => {
      const e = expected.points[i]!;
      expect(close(p.norm, scales[i]! * expected.reference)).toBe(true);
      expect(close(p.narrow, e.narrow)).toBe(true);
      expect(close(p.general, e.general)).toBe(true);
      expect(Math.abs(p.difference - (p.narrow - p.general))).toBeLessThanOrEqual(1e-12);
    });
    // The scales change the losses, so a program that ignored them would show.
    expect(Math.abs(expected.points[0]!.narrow - expected.points[2]!.narrow)).toBeGreaterThan(1e-4);
    expect(out.adapters).toBe(0);
    expect(out.held).toBeGreaterThan(0);
    expect(out.leftAfter).toBe(0);
  });

  it("a missing vector file or adapter directory, or a layer the model lacks: typed failures, live tensors at baseline", async () => {
    const cases: [Parameters<typeof compareNormsProgram>[0], string[]][] = [
      [{ narrow: join(work, "missing.safetensors"), general: adapterDir, examples: subset, scales: [1] }, ["SafetensorsError"]],
      [{ narrow: vectorFile, general: join(work, "no-such-adapter"), examples: subset, scales: [1] }, ["AdapterError"]],
      [{ narrow: vectorFile, general: vectorFile, layer: 7, examples: subset, scales: [1] }, ["DirectionError"]],
    ];
    for (const [options, tags] of cases) {
      const { tag, left } = await failureOf(compareNormsProgram(options));
      expect(tags).toContain(tag);
      expect(left).toBe(0);
    }
  });
});

describe("trajectoriesProgram", { timeout: 600_000 }, () => {
  it("equals trajectoryRows() and jointPca() on the checkpoints read outside Effect; the checkpoints freed after the scope", async () => {
    const runDir = loraRun();
    const filter = /q_proj/;
    const read = [readRunTrajectory(runDir, { label: "a", filter }), readRunTrajectory(runDir, { label: "b" })];
    let expected: { rows: TrajectoryRow[]; pca: ReturnType<typeof jointPca>; names: string[][]; filtered: TrajectoryRow[] };
    const all = [readRunTrajectory(runDir, { label: "a" }), readRunTrajectory(runDir, { label: "b" })];
    try {
      expected = {
        rows: all.flatMap(trajectoryRows),
        pca: jointPca(all, 2),
        names: read.map((t) => t.names),
        filtered: trajectoryRows(read[0]!),
      };
    } finally {
      for (const t of [...read, ...all]) disposeTrajectory(t);
    }
    // The filter matters: it keeps fewer tensors than the whole run holds, and the program applies it.
    expect(expected.names[0]!.length).toBeLessThan(expected.names[1]!.length);
    const filtered = await runScoped(trajectoriesProgram({ runs: [{ dir: runDir, label: "a" }], filter, components: 1 }));
    expect(filtered.value.rows.length).toBe(expected.filtered.length);
    filtered.value.rows.forEach((r, i) => expect(close(r.param_norm, expected.filtered[i]!.param_norm)).toBe(true));
    expect(Math.abs(expected.filtered[0]!.param_norm - expected.rows[0]!.param_norm)).toBeGreaterThan(1e-3);
    expect(filtered.leftAfter).toBe(0);
    const out = await runScoped(
      trajectoriesProgram({
        runs: [
          { dir: runDir, label: "a" },
          { dir: runDir, label: "b" },
        ],
        components: 2,
      }),
    );
    expect(out.value.steps).toEqual([
      [1, 2],
      [1, 2],
    ]);
    expect(out.value.rows.map((r) => [r.run, r.step])).toEqual(expected.rows.map((r) => [r.run, r.step]));
    const same = (a: number | null, b: number | null) => (a === null || b === null ? a === b : close(a, b));
    out.value.rows.forEach((r, i) => {
      const e = expected.rows[i]!;
      for (const key of ["param_norm", "update_norm", "update_cosine_prev", "grad_norm", "grad_cosine_prev"] as const)
        expect(same(r[key], e[key]), `${r.run} ${r.step} ${key}`).toBe(true);
    });
    expect(expected.rows[1]!.update_norm).toBeGreaterThan(0);
    out.value.pca.explained.forEach((v, k) => expect(close(v, expected.pca.explained[k]!)).toBe(true));
    out.value.pca.rows.forEach((r, i) => {
      expect([r.run, r.step]).toEqual([expected.pca.rows[i]!.run, expected.pca.rows[i]!.step]);
      r.scores.forEach((v, k) => expect(close(v, expected.pca.rows[i]!.scores[k]!)).toBe(true));
    });
    expect(out.held).toBeGreaterThan(0);
    expect(out.leftAfter).toBe(0);
  });

  it("a run without checkpoints, a filter matching nothing: typed failures, live tensors at baseline", async () => {
    const runDir = loraRun();
    const cases: [Parameters<typeof trajectoriesProgram>[0], string[]][] = [
      [{ runs: [{ dir: join(work, "no-such-run") }] }, ["InvalidSetupError"]],
      [{ runs: [{ dir: runDir }], filter: /no_such_module/ }, ["InvalidSetupError"]],
    ];
    for (const [options, tags] of cases) {
      const { tag, left } = await failureOf(trajectoriesProgram(options));
      expect(tags).toContain(tag);
      expect(left).toBe(0);
    }
  });
});

describe("monitorProgram", () => {
  const sampling = { maxNewTokens: 4, greedy: true };
  const prompt = "Any advice for a headache?";

  it("the events, ids and text of monitorGeneration() on the direction's row at the layer; hooks and direction gone after the scope", async () => {
    const directionFile = join(work, "monitor-direction.safetensors");
    const d = fixedTensor([2, 32], 19, 0.5);
    saveSafetensors(directionFile, { direction: d });
    d.dispose();
    const expected = plain((model, tokenizer) => {
      const direction = loadDirection(directionFile);
      try {
        const ids = tokenizer.encodeChat([{ role: "user", content: prompt }], { addGenerationPrompt: true });
        const row = tidy(() => keep(direction.select(0, 1)));
        try {
          const run = (threshold: number, ablateOnAlarm: boolean) => {
            const { result, events, ablated } = monitorGeneration(model.decoder, [ids], null, {
              ...sampling,
              layer: 1,
              direction: row,
              threshold,
              ablateOnAlarm,
              eosTokenIds: [],
            });
            return { events, ablated, newIds: result.newIds[0]! };
          };
          return { plain: run(0, false), ablating: run(-1e9, true) };
        } finally {
          row.dispose();
        }
      } finally {
        direction.dispose();
      }
    });
    const seen: number[] = [];
    const out = await runScoped(
      monitorProgram({ ...sampling, direction: directionFile, layer: 1, threshold: 0, prompt, onEvent: (e) => seen.push(e.token) }),
    );
    expect(out.value.newIds).toEqual(expected.plain.newIds);
    expect(out.value.ablated).toBe(false);
    expect(seen).toEqual(expected.plain.events.map((e) => e.token));
    out.value.events.forEach((e, i) => {
      const x = expected.plain.events[i]!;
      expect([e.step, e.row, e.token, e.alarm, e.ablated]).toEqual([x.step, x.row, x.token, x.alarm, x.ablated]);
      expect(close(e.projection, x.projection)).toBe(true);
    });
    expect(typeof out.value.text).toBe("string");
    expect(out.leftAfter).toBe(0);
    // The options matter: an alarm at every token with on-line ablation changes what is reported.
    const ablating = await runScoped(
      monitorProgram({ ...sampling, direction: directionFile, layer: 1, threshold: -1e9, ablateOnAlarm: true, prompt }),
    );
    expect(ablating.value.ablated).toBe(true);
    expect(ablating.value.newIds).toEqual(expected.ablating.newIds);
    expect(ablating.value.events.map((e) => e.ablated)).toEqual(expected.ablating.events.map((e) => e.ablated));
    expect(ablating.value.events.slice(1).every((e) => e.ablated)).toBe(true);
    expect(ablating.leftAfter).toBe(0);

    for (const [options, tags] of [
      [{ ...sampling, direction: join(work, "missing-direction.safetensors"), layer: 1, threshold: 0, prompt }, ["SafetensorsError"]],
      [{ ...sampling, direction: directionFile, layer: 5, threshold: 0, prompt }, ["InvalidSetupError"]],
    ] as const) {
      const { tag, left } = await failureOf(monitorProgram(options));
      expect(tags).toContain(tag);
      expect(left).toBe(0);
    }
  });
});
