/**
 * The model adapter of the experiment stages: load a base model and apply a solution (a PEFT LoRA
 * directory or a steering-vector file, told apart by the path), with a switch to run without it.
 * Also attaching and detaching solutions on one already loaded base model (analyses that compare
 * several solutions load the base once).
 */
import { Effect, type Scope } from "effect";
import type { LoraAdapter } from "../../adapters/lora.js";
import { loadPeftAdapter } from "../../adapters/peft.js";
import { loadSteeringVector } from "../../analysis/files.js";
import type { HookHandle } from "../../hooks/registry.js";
import { type LoadedModel, loadModel } from "../../models/load.js";
import type { Device, Tensor } from "../../tensor/index.js";
import { ChatTokenizer } from "../../tokenizer/tokenizer.js";
import type { SteeringVector } from "../../train/steering.js";
import { attempt, type TaggedFailure } from "../../train/attempt.js";
import { checkSolutionPath, isAdapterDir } from "../preflight.js";

export interface AttachedSolution {
  kind: "adapter" | "steering";
  adapter: LoraAdapter | null;
  steering: SteeringVector | null;
  /** The trainable tensors of the solution (LoRA A and B, or the vector). */
  tensors: Tensor[];
  /** Runs fn with the solution switched off (the base chat model). */
  off: <T>(fn: () => T) => T;
  detach: () => void;
  /** Same as detach(), for `using`. */
  [Symbol.dispose]: () => void;
}

/** Attaches a LoRA adapter directory or a steering-vector file to `model` (`field` names it in errors). */
export function attachSolution(model: LoadedModel, path: string, field = "solution"): AttachedSolution {
  if (isAdapterDir(path)) {
    const adapter = loadPeftAdapter(path, model);
    model.decoder.adapters.attach(adapter);
    return {
      kind: "adapter",
      adapter,
      steering: null,
      tensors: adapter.parameters(),
      off: (fn) => model.decoder.adapters.withoutAdapters(fn),
      detach: () => {
        model.decoder.adapters.detach(adapter);
        adapter.dispose();
      },
      [Symbol.dispose]() {
        this.detach();
      },
    };
  }
  checkSolutionPath(path, field);
  const steering = loadSteeringVector(path, model.decoder);
  const handle: HookHandle = steering.attach(model.decoder);
  return {
    kind: "steering",
    adapter: null,
    steering,
    tensors: [steering.vector],
    off: (fn) => steering.withoutSteering(fn),
    detach: () => {
      handle.remove();
      steering.dispose();
    },
    [Symbol.dispose]() {
      this.detach();
    },
  };
}

export interface OpenedModel {
  model: LoadedModel;
  tokenizer: ChatTokenizer;
  solution: AttachedSolution | null;
  close: () => void;
  /** Same as close(), for `using`. */
  [Symbol.dispose]: () => void;
}

/** Loads the base model (and the solution when given); close() (or the end of a `using` block) frees everything. */
export function openModelWith(
  base: string,
  options: { device: string; dtype: "f32" | "bf16" | "f16"; solution?: string | null },
): OpenedModel {
  const model = loadModel(base, { dtype: options.dtype, device: options.device as Device });
  let solution: AttachedSolution | null = null;
  try {
    if (options.solution) solution = attachSolution(model, options.solution);
    const tokenizer = ChatTokenizer.fromDir(base);
    const close = (): void => {
      solution?.detach();
      model.dispose();
    };
    return { model, tokenizer, solution, close, [Symbol.dispose]: close };
  } catch (error) {
    solution?.detach();
    model.dispose();
    throw error;
  }
}

/** `openModelWith` in the caller's Scope: everything it loaded is freed when the Scope closes. */
export const scopedOpenModel = (
  base: string,
  options: { device: string; dtype: "f32" | "bf16" | "f16"; solution?: string | null },
): Effect.Effect<OpenedModel, TaggedFailure, Scope.Scope> =>
  Effect.acquireRelease(
    attempt(() => openModelWith(base, options)),
    (opened) => Effect.sync(() => opened.close()),
  );

/** The pad id analyses batch with. */
export const padIdOf = (tokenizer: ChatTokenizer, model: LoadedModel): number =>
  tokenizer.padTokenId ?? tokenizer.endOfTurnIds(model.eosTokenIds)[0] ?? 0;
