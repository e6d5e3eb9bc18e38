/**
 * Refusing generation runs that cannot fit, before any tensor is allocated: prompt plus new tokens
 * beyond the model's positions (ContextLengthError), and an estimate of the peak host memory
 * (KV cache of every sample, the prompt pass's attention scores and activations, the logits) above
 * the budget (MemoryBudgetError). The budget is EMLAB_MEMORY_LIMIT_MB when set, else 80% of the
 * machine's memory; on CUDA devices only the context length is checked here.
 */
import { totalmem } from "node:os";
import { Data } from "effect";
import type { DecoderSpec } from "../nn/spec.js";
import { contextLengthError } from "../nn/errors.js";
import { type Device, type DType, itemSize } from "../tensor/index.js";

/** A run whose estimated memory exceeds the budget. */
export class MemoryBudgetError extends Data.TaggedError("MemoryBudgetError")<{
  readonly message: string;
  readonly estimatedBytes: number;
  readonly budgetBytes: number;
}> {}

export interface GenerationShape {
  rows: number;
  promptLength: number;
  maxNewTokens: number;
  samples: number;
}

/** Bytes of the larger tensors one generation run holds at its peak (an estimate from below). */
export function estimateGenerationBytes(spec: DecoderSpec, dtype: DType, shape: GenerationShape): number {
  const positions = shape.promptLength + shape.maxNewTokens;
  const sequences = shape.rows * shape.samples;
  const kvPerPosition = 2 * spec.layers.length * spec.numKvHeads * spec.headDim * itemSize(dtype);
  const kvCache = kvPerPosition * positions * sequences;
  const scores = shape.rows * spec.numHeads * shape.promptLength * shape.promptLength * 4;
  const activations = shape.rows * shape.promptLength * Math.max(spec.hiddenSize, spec.intermediateSize) * 4 * 3;
  const logits = sequences * spec.vocabSize * 4 * 2;
  return kvCache + scores + activations + logits;
}

/** The host-memory budget in bytes (EMLAB_MEMORY_LIMIT_MB, else 80% of total memory). */
export function memoryBudgetBytes(): number {
  const setting = process.env.EMLAB_MEMORY_LIMIT_MB;
  if (setting !== undefined && setting !== "") {
    const mb = Number(setting);
    if (Number.isFinite(mb) && mb > 0) return mb * 1024 * 1024;
  }
  return Math.floor(totalmem() * 0.8);
}

const mib = (bytes: number): string => `${Math.ceil(bytes / 1024 / 1024).toLocaleString("en-US")} MiB`;

/** Throws ContextLengthError / MemoryBudgetError for a run that cannot fit. */
export function checkGenerationBudget(spec: DecoderSpec, dtype: DType, device: Device, shape: GenerationShape): void {
  const positions = shape.promptLength + shape.maxNewTokens;
  if (spec.maxPositions !== null && positions > spec.maxPositions) {
    throw contextLengthError(
      `a prompt of ${shape.promptLength} tokens plus ${shape.maxNewTokens} new tokens`,
      positions,
      spec.maxPositions,
    );
  }
  if (device !== "cpu") return;
  const estimated = estimateGenerationBytes(spec, dtype, shape);
  const budget = memoryBudgetBytes();
  if (estimated > budget) {
    throw new MemoryBudgetError({
      message:
        `generating ${shape.samples} sample(s) of ${shape.maxNewTokens} tokens for ${shape.rows} prompt(s) of ${shape.promptLength} tokens ` +
        `needs about ${mib(estimated)}, more than the ${mib(budget)} budget (EMLAB_MEMORY_LIMIT_MB); use fewer samples, shorter prompts or fewer new tokens`,
      estimatedBytes: estimated,
      budgetBytes: budget,
    });
  }
}
