/**
 * The Promise facade for plain async scripts: `await train(config)` and `await evaluate(...)` run the
 * Effect recipes with the layers built from plain options, so a script needs no Effect. Failures
 * reject with the typed error itself (its `_tag` says which), not a wrapper.
 */
import { Effect, Layer } from "effect";
import type { OpenAIJudgeOptions } from "../eval/judge/openai.js";
import type { ModelLoadOptions } from "../models/load.js";
import { type TrainRunOptions, type TrainRunResult, trainingProgram } from "../recipes/train.js";
import { readRunConfig, type RunConfig } from "../train/config.js";
import { boundary } from "./errors.js";
import { runPromise } from "./run-promise.js";
import { type EvaluateOptions, type EvaluateResult, evaluateProgram } from "./evaluate.js";
import { JudgeCacheService, JudgeService, ModelService, type ScoreFunction } from "./services.js";

/** The training recipe (src/recipes/train.ts) from a config file or a resolved config. */
export function trainProgram(config: RunConfig | string, options: TrainRunOptions = {}) {
  return boundary(() => (typeof config === "string" ? readRunConfig(config) : config)).pipe(
    Effect.flatMap((resolved) => trainingProgram(resolved, options)),
  );
}

/** Trains as the config says (a YAML/JSON file path or a resolved RunConfig). */
export function train(config: RunConfig | string, options: TrainRunOptions = {}): Promise<TrainRunResult> {
  return runPromise(trainProgram(config, options));
}

/** Which judge `evaluate` uses. */
export type JudgeChoice =
  | { readonly kind: "openai"; readonly options: OpenAIJudgeOptions }
  | { readonly kind: "local"; readonly dir: string; readonly name?: string }
  | { readonly kind: "function"; readonly name: string; readonly score: ScoreFunction };

export interface EvaluateScriptOptions extends EvaluateOptions {
  /** Model directory to sample from. */
  model: string;
  load?: ModelLoadOptions;
  /** Default: no judging (sampling only) unless judgeNames is empty anyway. */
  judge?: JudgeChoice;
  /** Judge cache file (default `${out}.judge-cache.jsonl`; null: in memory). */
  cache?: string | null;
}

function judgeLayer(choice: JudgeChoice | undefined) {
  if (choice === undefined) return JudgeService.fromFunction("none", () => null);
  if (choice.kind === "openai") return JudgeService.openai(choice.options);
  if (choice.kind === "local") return JudgeService.local(choice.dir, { name: choice.name });
  return JudgeService.fromFunction(choice.name, choice.score);
}

/** Samples and judges a question set with a model directory; models are freed before it settles. */
export function evaluate(options: EvaluateScriptOptions): Promise<EvaluateResult> {
  const layers = Layer.mergeAll(
    ModelService.layer(options.model, options.load),
    judgeLayer(options.judge),
    JudgeCacheService.layer(options.cache === undefined ? `${options.out}.judge-cache.jsonl` : options.cache),
  );
  const judgeNames = options.judge === undefined ? [] : options.judgeNames;
  return runPromise(evaluateProgram({ ...options, judgeNames }).pipe(Effect.provide(layers)));
}
