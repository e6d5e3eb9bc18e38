/**
 * What an Effect program is configured with, as Context services with their layers: the model and
 * its tokenizer, the judge (OpenAI-compatible API, a local emlab model, or a TypeScript function),
 * the judge cache, the locked run directory, and the seeded randomness where determinism matters
 * (Effect's Random service and libtorch's generator). A layer that acquires something (a model, a
 * lock) releases it in its finalizer when the program's scope closes.
 */
import { Context, Effect, Layer, Random } from "effect";
import { JudgeCache } from "../eval/judge/cache.js";
import { type Judge, JudgeError } from "../eval/judge/judge.js";
import { LocalJudge } from "../eval/judge/local.js";
import { OpenAIJudge, type OpenAIJudgeOptions } from "../eval/judge/openai.js";
import type { JudgeScore } from "../eval/judge/score.js";
import type { LoadedModel, ModelLoadOptions } from "../models/load.js";
import { manualSeed } from "../tensor/creation.js";
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { type BoundaryError, boundary } from "./errors.js";
import { scopedModelWithTokenizer } from "./resources.js";
import { type RunDirectoryLock, type RunDirectoryLockedError, scopedRunDirectory } from "./run-directory.js";

/** The model under study and its chat tokenizer. */
export class ModelService extends Context.Service<ModelService, { readonly model: LoadedModel; readonly tokenizer: ChatTokenizer }>()(
  "emlab/Model",
) {
  /** Loads `dir` (weights + tokenizer); the weights are freed by the layer's finalizer. */
  static layer(dir: string, options: ModelLoadOptions = {}): Layer.Layer<ModelService, BoundaryError> {
    return Layer.effect(ModelService, scopedModelWithTokenizer(dir, options));
  }
}

/** A score from a TypeScript function (0..100, or null for no score). */
export type ScoreFunction = (prompt: string) => number | null | Promise<number | null>;

/** A judge backed by a TypeScript function; a throw or a value outside 0..100 is a JudgeError ("Function"). */
export function functionJudge(name: string, fn: ScoreFunction): Judge {
  const fail = (message: string) =>
    new JudgeError({ message: `judge ${name}: ${message}`, reason: { _tag: "Function" }, status: null, attempts: 1 });
  return {
    model: name,
    score: (prompt) =>
      Effect.tryPromise({ try: async () => fn(prompt), catch: (error) => fail((error as Error)?.message ?? String(error)) }).pipe(
        Effect.flatMap((value): Effect.Effect<JudgeScore, JudgeError> =>
          value === null || (typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 100)
            ? Effect.succeed({ score: value, numericMass: 1, top: [] })
            : Effect.fail(fail(`returned ${JSON.stringify(value)}, expected a number in 0..100 or null`)),
        ),
      ),
  };
}

/** The judge that scores filled judge prompts. */
export class JudgeService extends Context.Service<JudgeService, Judge>()("emlab/Judge") {
  /** An OpenAI-compatible chat-completions judge (OpenAI, Azure, vLLM, llama.cpp ...). */
  static openai(options: OpenAIJudgeOptions): Layer.Layer<JudgeService> {
    return Layer.sync(JudgeService, () => new OpenAIJudge(options));
  }
  /** A judge running on a model loaded by emlab; the layer's finalizer frees that model. */
  static local(
    dir: string,
    options: { name?: string; minimumMass?: number; load?: ModelLoadOptions } = {},
  ): Layer.Layer<JudgeService, BoundaryError> {
    return Layer.effect(
      JudgeService,
      scopedModelWithTokenizer(dir, options.load).pipe(
        Effect.map(({ model, tokenizer }) => new LocalJudge(model, tokenizer, { name: options.name, minimumMass: options.minimumMass })),
      ),
    );
  }
  /** A judge that is a TypeScript function of the filled prompt. */
  static fromFunction(name: string, fn: ScoreFunction): Layer.Layer<JudgeService> {
    return Layer.succeed(JudgeService, functionJudge(name, fn));
  }
}

/** The persistent judge cache (null path: in memory only). */
export class JudgeCacheService extends Context.Service<JudgeCacheService, JudgeCache>()("emlab/JudgeCache") {
  static layer(path: string | null): Layer.Layer<JudgeCacheService, BoundaryError> {
    return Layer.effect(
      JudgeCacheService,
      boundary(() => new JudgeCache(path)),
    );
  }
}

/** The run's output directory, locked against a second writer while the program runs. */
export class RunDirectory extends Context.Service<RunDirectory, RunDirectoryLock>()("emlab/RunDirectory") {
  static layer(dir: string): Layer.Layer<RunDirectory, BoundaryError | RunDirectoryLockedError> {
    return Layer.effect(RunDirectory, scopedRunDirectory(dir));
  }
}

/**
 * Determinism: Effect's Random service seeded with `seed` (judge retry jitter and any Effect-side
 * randomness) and libtorch's generator seeded with the same number (dropout, sampling, init).
 */
export function seededRandomness(seed: number): Layer.Layer<never> {
  const seededRandom = Layer.effect(Random.Random, Random.withSeed(Effect.service(Random.Random), seed));
  return Layer.merge(seededRandom, Layer.effectDiscard(Effect.sync(() => manualSeed(seed)))) as Layer.Layer<never>;
}
