// Resources one by one: every class that owns native memory or a handle frees it through
// [Symbol.dispose] (so `using` works) and through its Effect constructor when the Scope closes; the
// boundary helper turns typed component errors and Node file errors into failures and keeps bugs as
// defects.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cause, Effect, Exit } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { boundary } from "../../src/effect/errors.js";
import { acquireDisposable, scopedHook, scopedKvCache, scopedModel, scopedOptimizer, scopedTensor } from "../../src/effect/resources.js";
import { step } from "../../src/effect/step.js";
import { layerPoint } from "../../src/hooks/points.js";
import { loadModel } from "../../src/models/load.js";
import { AdamW } from "../../src/optim/index.js";
import { seededRandom } from "../../src/random/seeded.js";
import { liveTensorCount, ones, tensor, zeros } from "../../src/tensor/index.js";
import { readRunConfig } from "../../src/train/config.js";
import { MasterWeights } from "../../src/train/master-weights.js";
import { SteeringVector } from "../../src/train/steering.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { useLeakCheck } from "../helpers/leaks.js";

let work = "";
let modelDir = "";
beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-effect-resources-", 4, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const failureOf = async (program: Effect.Effect<unknown, unknown>) => {
  const exit = await Effect.runPromiseExit(program);
  if (Exit.isSuccess(exit)) throw new Error("expected a failure");
  return { dies: Cause.hasDies(exit.cause), error: Cause.squash(exit.cause) as { _tag?: string; code?: string; path?: string } };
};

describe("Symbol.dispose", () => {
  useLeakCheck();

  it("frees a tensor, a model, an adapter, a steering vector, an optimizer and master weights at the end of a using block", () => {
    const before = liveTensorCount();
    {
      using t = ones([3]);
      using model = loadModel(modelDir);
      using adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 4, targetModules: ["q_proj"] });
      using vector = SteeringVector.create(model.decoder, 1);
      using optimizer = new AdamW(adapter.parameters(), { lr: 1e-3 });
      using masters = new MasterWeights(new Map([["embed", model.parameters.get("model.embed_tokens.weight")!]]));
      expect(liveTensorCount() - before).toBeGreaterThan(model.parameters.size + 2 * adapter.modules.size + 1);
      void [t, vector, optimizer, masters];
    }
    expect(liveTensorCount()).toBe(before);
  });

  it("a hook handle's dispose removes the hook", () => {
    const model = loadModel(modelDir);
    try {
      {
        using hook = model.decoder.hooks.add(layerPoint(0, "resid_post"), () => undefined);
        void hook;
        expect(model.decoder.hooks.size).toBe(1);
      }
      expect(model.decoder.hooks.size).toBe(0);
    } finally {
      model.dispose();
    }
  });
});

describe("Effect constructors", () => {
  useLeakCheck();

  it("scopedTensor, scopedOptimizer, scopedHook and scopedKvCache live exactly as long as their Scope", async () => {
    const before = liveTensorCount();
    const program = Effect.gen(function* () {
      const model = yield* scopedModel(modelDir);
      const w = yield* scopedTensor(() => zeros([4]).add(1).requiresGrad_());
      const optimizer = yield* scopedOptimizer(() => new AdamW([w], { lr: 0.1 }));
      let seen = 0;
      yield* scopedHook(model.decoder.hooks, layerPoint(1, "resid_post"), () => void seen++);
      const cache = yield* scopedKvCache(model.decoder, 8);
      // Two forward passes through the cache: prefill of 3 tokens, then one more.
      // (a step returns plain values: the logits are freed with the step)
      yield* step(() => void model.decoder.forward(tensor(BigInt64Array.from([1n, 2n, 3n]), { shape: [1, 3] }), { cache }));
      yield* step(() => void model.decoder.forward(tensor(BigInt64Array.from([4n]), { shape: [1, 1] }), { cache }));
      yield* step(() => {
        w.sum().backward();
        optimizer.step();
      });
      return { seen, cached: cache.length, hooks: model.decoder.hooks.size, w: Array.from(w.toArray() as Float32Array) };
    });
    const out = await Effect.runPromise(Effect.scoped(program));
    expect(out.seen).toBe(2);
    expect(out.cached).toBe(4);
    expect(out.hooks).toBe(1);
    // AdamW's first step moves each weight by lr (sign of the gradient 1) after decay 1 - lr*wd.
    for (const v of out.w) expect(v).toBeCloseTo(1 * (1 - 0.1 * 0.01) - 0.1, 5);
    expect(liveTensorCount()).toBe(before);
  });

  it("acquireDisposable works for anything with Symbol.dispose", async () => {
    const log: string[] = [];
    await Effect.runPromise(
      Effect.scoped(
        acquireDisposable(Effect.sync(() => ({ [Symbol.dispose]: () => void log.push("released") }))).pipe(
          Effect.tap(() => Effect.sync(() => log.push("used"))),
        ),
      ),
    );
    expect(log).toEqual(["used", "released"]);
  });
});

describe("boundary", () => {
  it("a missing file is a FileSystemError with Node's code and the path", async () => {
    const missing = join(work, "no-such-file");
    const { dies, error } = await failureOf(boundary(() => readFileSync(missing)));
    expect(dies).toBe(false);
    expect(error).toMatchObject({ _tag: "FileSystemError", code: "ENOENT", path: missing });
  });

  it("a component's typed error passes through (RunConfigError naming the file)", async () => {
    const file = join(work, "run.yaml");
    writeFileSync(file, "model: [unclosed\n");
    const { dies, error } = await failureOf(boundary(() => readRunConfig(file)));
    expect(dies).toBe(false);
    expect(error._tag).toBe("RunConfigError");
  });

  it("a component's range check is an InvalidSetupError, a steering layer the model lacks a RunInputError; a bug stays a defect", async () => {
    const model = loadModel(modelDir);
    try {
      const range = await failureOf(boundary(() => seededRandom(1.5)));
      expect([range.dies, range.error._tag]).toEqual([false, "InvalidSetupError"]);
      const layer = await failureOf(boundary(() => SteeringVector.create(model.decoder, 99)));
      expect([layer.dies, layer.error._tag]).toEqual([false, "RunInputError"]);
      const bug = await failureOf(boundary(() => (null as unknown as { x: number }).x));
      expect(bug.dies).toBe(true);
    } finally {
      model.dispose();
    }
  });
});
