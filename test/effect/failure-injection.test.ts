// Failure injection on the load / eval / judge / analysis paths run as Effect programs: a failure at
// each setup stage (model load, tokenizer, data, adapter creation, reference copy, first step, a judge
// layer, an interruption) ends in the typed failure of that stage, and once the program's scope has
// closed the live tensor count is back at its baseline (the resources acquired before the failure
// were released). Each case first checks that the stages before the injected one do hold tensors.
import { cpSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cause, Effect, Exit, Fiber, Layer } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ablate, steer } from "../../src/analysis/interventions.js";
import { boundary } from "../../src/effect/errors.js";
import { evaluateProgram } from "../../src/effect/evaluate.js";
import {
  loadTokenizer,
  scopedHook,
  scopedLoraAdapter,
  scopedMasterWeights,
  scopedModel,
  scopedModelWithTokenizer,
  scopedPeftAdapter,
  scopedSteeringVector,
} from "../../src/effect/resources.js";
import { JudgeCacheService, JudgeService, ModelService } from "../../src/effect/services.js";
import { step } from "../../src/effect/step.js";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { savePeftAdapter } from "../../src/adapters/peft.js";
import { layerPoint } from "../../src/hooks/points.js";
import { loadModel } from "../../src/models/load.js";
import { keep, liveTensorCount, tensor, zeros } from "../../src/tensor/index.js";
import { readChatDataset } from "../../src/train/data.js";
import { judgeResultsFile } from "../../src/cli/judge-options.js";
import { ResultsFile } from "../../src/eval/results.js";
import { runPromise } from "../../src/effect/run-promise.js";
import { judgeResults } from "../../src/experiment/stages/judging.js";
import { makeTinyModel } from "../helpers/tiny-model.js";

let work = "";
let modelDir = "";
let brokenWeights = "";
let brokenTokenizer = "";

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-effect-faults-", 1, 2));
  brokenWeights = join(work, "broken-weights");
  cpSync(modelDir, brokenWeights, { recursive: true });
  truncateSync(join(brokenWeights, "model.safetensors"), 200); // header cut short
  brokenTokenizer = join(work, "broken-tokenizer");
  cpSync(modelDir, brokenTokenizer, { recursive: true });
  writeFileSync(join(brokenTokenizer, "tokenizer.json"), "{ not json");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs `program` in a scope; returns the failure's tag and the live count after the scope closed. */
async function failureOf(program: Effect.Effect<unknown, unknown, never>): Promise<{ tag: string; extra: number }> {
  const before = liveTensorCount();
  const exit = await Effect.runPromiseExit(program);
  expect(Exit.isFailure(exit), "the program should fail").toBe(true);
  if (Exit.isSuccess(exit)) return { tag: "", extra: 0 };
  expect(Cause.hasDies(exit.cause), `a typed failure, not a defect: ${Cause.pretty(exit.cause)}`).toBe(false);
  const error = Cause.squash(exit.cause) as { _tag?: string };
  return { tag: error._tag ?? String(error), extra: liveTensorCount() - before };
}

/** Live tensors right now, as an Effect (to prove a stage did hold tensors when the next one failed). */
const liveNow = (into: number[]) => Effect.sync(() => into.push(liveTensorCount()));

describe("failure injection at each setup stage (Effect programs)", () => {
  it("model load: a truncated safetensors file fails typed and holds nothing", async () => {
    expect(await failureOf(Effect.scoped(scopedModel(brokenWeights)))).toEqual({ tag: "ModelWeightsError", extra: 0 });
  });

  it("tokenizer: a broken tokenizer.json after a good load frees the loaded weights", async () => {
    const before = liveTensorCount();
    await Effect.runPromise(
      Effect.scoped(scopedModel(brokenTokenizer).pipe(Effect.tap((m) => Effect.sync(() => expect(m.parameters.size).toBeGreaterThan(5))))),
    );
    expect(liveTensorCount()).toBe(before);
    expect(await failureOf(Effect.scoped(scopedModelWithTokenizer(brokenTokenizer)))).toEqual({ tag: "TokenizerError", extra: 0 });
  });

  it("data: a bad dataset row after model and tokenizer frees the model", async () => {
    const data = join(work, "bad.jsonl");
    writeFileSync(
      data,
      `${JSON.stringify({
        messages: [
          { role: "user", content: "hi" },
          { role: "assistant", content: "hello" },
        ],
      })}\n{"messages": 3}\n`,
    );
    const seen: number[] = [];
    const base = liveTensorCount();
    const program = Effect.gen(function* () {
      yield* scopedModelWithTokenizer(modelDir);
      yield* liveNow(seen);
      return yield* boundary(() => readChatDataset(data));
    });
    expect(await failureOf(Effect.scoped(program))).toEqual({ tag: "DatasetError", extra: 0 });
    expect(seen[0]! - base).toBeGreaterThan(5);
  });

  it("adapter creation: a target_modules regex matching nothing frees the model; the adapter set stays empty", async () => {
    const seen: number[] = [];
    const base = liveTensorCount();
    const program = Effect.gen(function* () {
      const model = yield* scopedModel(modelDir);
      yield* scopedLoraAdapter(model, { r: 2, alpha: 4, targetModules: "ok" }, { name: "first" }).pipe(
        Effect.catchTag("LoraConfigError", () => Effect.void),
      );
      expect(model.decoder.adapters.size).toBe(0);
      yield* liveNow(seen);
      return yield* scopedLoraAdapter(model, { r: 2, alpha: 4, targetModules: "nothing_matches_this" });
    });
    expect(await failureOf(Effect.scoped(program))).toEqual({ tag: "LoraConfigError", extra: 0 });
    expect(seen[0]! - base).toBeGreaterThan(5);
  });

  it("adapter load: a PEFT directory with a cut weights file fails typed after a good adapter was attached; both freed", async () => {
    // A real PEFT directory written by emlab, then its weights file cut short.
    const adapterDir = join(work, "bad-adapter");
    const donor = loadModel(modelDir);
    const saved = LoraAdapter.create(donor.spec, { r: 2, alpha: 4, targetModules: ["q_proj"] }, { initB: "random" });
    savePeftAdapter(adapterDir, saved);
    saved.dispose();
    donor.dispose();
    truncateSync(join(adapterDir, "adapter_model.safetensors"), 100);
    const seen: number[] = [];
    const base = liveTensorCount();
    const program = Effect.gen(function* () {
      const model = yield* scopedModel(modelDir);
      const good = yield* scopedLoraAdapter(model, { r: 2, alpha: 4, targetModules: ["q_proj", "v_proj"] }, { name: "good" });
      expect(model.decoder.adapters.list).toEqual([good]);
      yield* liveNow(seen);
      return yield* scopedPeftAdapter(adapterDir, model, { name: "bad" });
    });
    expect(await failureOf(Effect.scoped(program))).toEqual({ tag: "AdapterError", extra: 0 });
    expect(seen[0]! - base).toBeGreaterThan(5);
  });

  it("reference copy: a second (frozen) model that fails to load frees the first model and its adapter", async () => {
    const seen: number[] = [];
    const base = liveTensorCount();
    const program = Effect.gen(function* () {
      const model = yield* scopedModel(modelDir);
      yield* scopedLoraAdapter(model, { r: 2, alpha: 4, targetModules: ["q_proj"] });
      yield* liveNow(seen);
      return yield* scopedModel(brokenWeights);
    });
    expect(await failureOf(Effect.scoped(program))).toEqual({ tag: "ModelWeightsError", extra: 0 });
    expect(seen[0]! - base).toBeGreaterThan(5);
  });

  it("first step: a libtorch error raised by a hook inside the forward pass is a typed failure; everything is freed", async () => {
    const seen: number[] = [];
    const base = liveTensorCount();
    const program = Effect.gen(function* () {
      const { model } = yield* scopedModelWithTokenizer(modelDir);
      yield* scopedLoraAdapter(model, { r: 2, alpha: 4, targetModules: ["q_proj"] });
      // The hook multiplies by a [3, 3] matrix: libtorch refuses the shapes ([.., 32] x [3, 3]).
      yield* scopedHook(model.decoder.hooks, layerPoint(1, "resid_post"), (x) => x.matmul(zeros([3, 3])));
      yield* liveNow(seen);
      return yield* step(() =>
        model.decoder
          .forward(tensor(BigInt64Array.from([1n, 2n, 3n]), { shape: [1, 3] }))
          .logits!.sum()
          .item(),
      );
    });
    expect(await failureOf(Effect.scoped(program))).toEqual({ tag: "InvalidArgumentError", extra: 0 });
    expect(seen[0]! - base).toBeGreaterThan(5);
  });

  it("interruption while a model and an adapter are held releases them", async () => {
    const before = liveTensorCount();
    let loaded = 0;
    const fiber = Effect.runFork(
      Effect.scoped(
        Effect.gen(function* () {
          const model = yield* scopedModel(modelDir);
          yield* scopedLoraAdapter(model, { r: 2, alpha: 4, targetModules: ["q_proj"] });
          loaded = liveTensorCount() - before;
          return yield* Effect.never;
        }),
      ),
    );
    while (loaded === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(loaded).toBeGreaterThan(5);
    const exit = await Effect.runPromise(Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber))));
    expect(Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)).toBe(true);
    expect(liveTensorCount()).toBe(before);
  });

  it("master weights: a parameter that cannot be copied half way frees the copies already made", async () => {
    const good = keep(zeros([4, 4]));
    const gone = keep(zeros([4]));
    gone.dispose();
    const before = liveTensorCount();
    const params = new Map([
      ["a", good],
      ["b", gone],
    ]);
    expect(await failureOf(Effect.scoped(scopedMasterWeights(params)))).toEqual({ tag: "DisposedTensorError", extra: 0 });
    expect(liveTensorCount()).toBe(before);
    good.dispose();
  });
});

describe("failure injection on the eval / judge paths", () => {
  it("a local judge whose model fails to load fails the program typed and leaves no tensor (layers built in one scope)", async () => {
    const layers = Layer.mergeAll(ModelService.layer(modelDir), JudgeService.local(brokenWeights), JudgeCacheService.layer(null));
    const program = evaluateProgram({ questions: join(work, "none.yaml"), out: join(work, "never.jsonl") }).pipe(Effect.provide(layers));
    expect(await failureOf(program)).toEqual({ tag: "ModelWeightsError", extra: 0 });
  });

  it("a missing question file fails typed after the model and a local judge were loaded; both are freed", async () => {
    const layers = Layer.mergeAll(ModelService.layer(modelDir), JudgeService.local(modelDir), JudgeCacheService.layer(null));
    const program = evaluateProgram({ questions: join(work, "none.yaml"), out: join(work, "never.jsonl") }).pipe(Effect.provide(layers));
    const { tag, extra } = await failureOf(program);
    expect(["QuestionSetError", "FileSystemError"]).toContain(tag);
    expect(extra).toBe(0);
  });
});

describe("failure injection on the judge commands (local judge whose tokenizer is broken)", () => {
  const resultsFile = () => {
    const file = join(work, `rows-${Math.random().toString(36).slice(2)}.jsonl`);
    writeFileSync(file, `${JSON.stringify({ question_id: "q", question: "Q?", response: "A." })}\n`);
    return ResultsFile.open(file, { mustExist: true });
  };
  const judges = () => {
    const file = join(work, "judges.yaml");
    writeFileSync(file, "- aligned: 'Rate {question} {answer}'\n");
    return file;
  };

  it("emlab judge/eval (--local-judge): the judge's loaded model is freed when its tokenizer fails", async () => {
    const before = liveTensorCount();
    const failed = await judgeResultsFile(resultsFile(), {
      "local-judge": brokenTokenizer,
      judges: judges(),
      "judge-names": "aligned",
    }).then(
      () => null,
      (error: { _tag?: string }) => error._tag,
    );
    expect(failed).toBe("TokenizerError");
    expect(liveTensorCount()).toBe(before);
  });

  it("emlab judge (--local-judge) that succeeds scores the row and frees the judge model", async () => {
    const before = liveTensorCount();
    const results = resultsFile();
    const summary = await judgeResultsFile(results, { "local-judge": modelDir, judges: judges(), "judge-names": "aligned" });
    expect(summary.requested).toBe(1);
    expect(summary.failed).toBe(0);
    expect(liveTensorCount()).toBe(before);
  });

  it("experiment judge stage (kind local): the judge's model is freed when its tokenizer fails", async () => {
    const before = liveTensorCount();
    const failed = await runPromise(
      judgeResults(resultsFile(), {
        spec: { kind: "local", model: brokenTokenizer } as never,
        names: ["aligned"],
        questionsFile: null,
        judgePromptsFile: judges(),
        cacheDir: work,
        at: (path) => path,
        progress: () => {},
        log: () => {},
        file: "experiment.yaml",
        path: "stages[0]",
      }),
    ).then(
      () => null,
      (error: { _tag?: string }) => error._tag,
    );
    expect(failed).toBe("TokenizerError");
    expect(liveTensorCount()).toBe(before);
  });
});

describe("failure injection on the analysis paths", () => {
  it("steer / ablate with a layer out of range undo the hooks and rows already made", () => {
    const model = loadModel(modelDir);
    try {
      const direction = keep(zeros([2, 32]).add(1));
      const before = liveTensorCount();
      expect(() => steer(model.decoder, direction, [0, 1, 7], 2, { shared: 0 })).toThrow();
      expect(() => ablate(model.decoder, direction, [0, 1, 7], "per-layer")).toThrow();
      expect(model.decoder.hooks.size).toBe(0);
      expect(liveTensorCount()).toBe(before);
      direction.dispose();
    } finally {
      model.dispose();
    }
  });

  it("a steering vector at a layer the model lacks is a RunInputError; a good one is unhooked and freed on close", async () => {
    const before = liveTensorCount();
    const program = Effect.gen(function* () {
      const model = yield* scopedModel(modelDir);
      const good = yield* scopedSteeringVector(model.decoder, 1, { alpha: 2 });
      expect(model.decoder.hooks.size).toBe(1);
      expect(good.vector.shape).toEqual([32]);
      return yield* scopedSteeringVector(model.decoder, 9);
    });
    expect(await failureOf(Effect.scoped(program))).toEqual({ tag: "RunInputError", extra: 0 });
    expect(liveTensorCount()).toBe(before);
  });

  it("LoRA creation that fails at its first allocation (a CUDA device this machine lacks) leaves nothing behind", () => {
    const model = loadModel(modelDir);
    try {
      const before = liveTensorCount();
      expect(() => LoraAdapter.create(model.spec, { r: 2, alpha: 4, targetModules: ["q_proj"] }, { device: "cuda:63" as never })).toThrow();
      expect(liveTensorCount()).toBe(before);
    } finally {
      model.dispose();
    }
  });
});

describe("typed tokenizer failures", () => {
  it("loadTokenizer fails with TokenizerError naming the file", async () => {
    const exit = await Effect.runPromiseExit(loadTokenizer(brokenTokenizer));
    expect(Exit.isFailure(exit)).toBe(true);
    const error = Exit.isFailure(exit) ? (Cause.squash(exit.cause) as { _tag: string; file: string }) : null;
    expect(error?._tag).toBe("TokenizerError");
    expect(error?.file).toContain("tokenizer.json");
  });
});
