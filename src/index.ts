/**
 * emlab's public API: tensors and autograd on libtorch, optimizers, safetensors IO, runtime checks,
 * Hugging Face models, hooks, tokenizers and generation.
 */
export * from "./adapters/adapter-set.js";
export * from "./adapters/lora.js";
export * from "./adapters/peft.js";
export * from "./eval/judge/cache.js";
export * from "./eval/judge/judge.js";
export * from "./eval/judge/local.js";
export * from "./eval/judge/openai.js";
export * from "./eval/judge/run.js";
export * from "./eval/judge/score.js";
export * from "./eval/metrics.js";
export * from "./eval/questions.js";
export * from "./eval/results.js";
export * from "./eval/sample.js";
export * from "./eval/stats.js";
export * from "./generate/generate.js";
export * from "./generate/sampling.js";
export * from "./hooks/interventions.js";
export * from "./hooks/points.js";
export * from "./hooks/registry.js";
export * from "./io/safetensors.js";
export * from "./models/errors.js";
export * from "./models/hf-config.js";
export * from "./models/load.js";
export * from "./models/random.js";
export type * from "./models/spec.js";
export * from "./nn/decoder.js";
export * from "./nn/kv-cache.js";
export * from "./nn/losses.js";
export * from "./recipes/train.js";
export * from "./tokenizer/tokenizer.js";
export * from "./train/checkpoint.js";
export * from "./train/config.js";
export * from "./train/data.js";
export * from "./train/losses.js";
export * from "./train/schedule.js";
export * from "./train/steering.js";
export * from "./optim/index.js";
export * from "./runtime/doctor.js";
export * from "./tensor/index.js";
