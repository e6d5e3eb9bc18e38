/**
 * `emlab/models`: loading Hugging Face model directories, the shared decoder and its spec, tokenizers
 * and chat templates, LoRA adapters (PEFT files), hook points, activation caching and patching, and
 * generation. Weight-name tables, RoPE readers and sampling internals are not part of it.
 */
export { type LoadedModel, loadModel, type ModelLoadOptions } from "../models/load.js";
export { ModelConfigError, ModelWeightsError, UnsupportedArchitectureError } from "../models/errors.js";
export { type HfConfig, type HfGenerationConfig, readGenerationConfig, readHfConfig } from "../models/hf-config.js";
export { writeRandomModel } from "../models/random.js";
export type { FamilyName, ModelSpec } from "../models/spec.js";
export type { DecoderSpec, LayerSpec } from "../nn/spec.js";
export { Decoder, type DecoderWeights, type ForwardOptions, type ForwardOutput, type LayerWeights } from "../nn/decoder.js";
export { TokenIdError } from "../nn/errors.js";
export { KvCache } from "../nn/kv-cache.js";
export { causalLmLoss } from "../nn/losses.js";
export { type LinearKind, linearModuleName, linearModules } from "../nn/linear-modules.js";
export { type BaseProduct, plainProjections, type ProjectionSource } from "../nn/projections.js";
export { type ChatMessage, type ChatTemplateOptions, ChatTokenizer, TokenizerError } from "../tokenizer/tokenizer.js";
export { isTarget, LoraAdapter, type LoraConfig, type LoraModule } from "../adapters/lora.js";
export { AdapterError, loadPeftAdapter, savePeftAdapter } from "../adapters/peft.js";
export { AdapterSet } from "../adapters/adapter-set.js";
export { attachPeftAdapters, loadPeftAdapters, resolveAdapterDirs } from "../adapters/adapter-dirs.js";
export {
  type AttentionPoint,
  type HookPoint,
  isHookPoint,
  type LayerPoint,
  layerPoint,
  layerPoints,
  type MlpPoint,
  parseLayerPoint,
  patternPoints,
} from "../hooks/points.js";
export type { HookContext, HookFn, HookHandle, HookRegistry } from "../hooks/registry.js";
export { addHook, captureHook, gradientHook, projectOutHook } from "../hooks/interventions.js";
export { ActivationCache, type CacheOptions, patchActivations, type PatchOptions, type PatchResult, runWithCache } from "../hooks/cache.js";
export { generate, type GenerateOptions, type GenerateResult } from "../generate/generate.js";
export { generateEffect, type GenerationError, type YieldOptions } from "../generate/generate-effect.js";
export { type IdRowsInput, IdShapeError } from "../generate/ids.js";
export type { SamplingOptions } from "../generate/sampling.js";
