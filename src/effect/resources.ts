/**
 * Effect constructors for everything that owns native memory or an external handle: each acquires
 * the resource in the enclosing `Scope` (Effect.acquireRelease) and releases it when the scope
 * closes, on success, failure or interruption. Acquisition failures are typed (errors.ts). The
 * classes themselves stay plain (dispose() / Symbol.dispose); these functions only tie them to a
 * Scope. Setup hooks (`onStage`) exist for failure-injection tests.
 */
import { Effect, type Scope } from "effect";
import { loadPeftAdapter } from "../adapters/peft.js";
import { LoraAdapter, type LoraConfig } from "../adapters/lora.js";
import type { HookFn, HookHandle, HookRegistry } from "../hooks/registry.js";
import type { HookPoint } from "../hooks/points.js";
import { type LoadedModel, loadModel, type ModelLoadOptions } from "../models/load.js";
import type { Decoder } from "../nn/decoder.js";
import { KvCache } from "../nn/kv-cache.js";
import type { Optimizer } from "../optim/optimizer.js";
import { keep, tidy } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { MasterWeights } from "../train/master-weights.js";
import { type SteeringRows, type SteeringSite, SteeringVector } from "../train/steering.js";
import { type BoundaryError, boundary, InvalidSetupError } from "./errors.js";

/** Ties a disposable made by `acquire` to the enclosing Scope. */
export function acquireDisposable<A extends Disposable, E, R>(acquire: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Scope.Scope> {
  return Effect.acquireRelease(acquire, (resource) => Effect.sync(() => resource[Symbol.dispose]()));
}

/** A tensor made by `make` (its intermediates freed at once), freed when the Scope closes. */
export function scopedTensor(make: () => Tensor): Effect.Effect<Tensor, BoundaryError, Scope.Scope> {
  return acquireDisposable(boundary(() => tidy(() => keep(make()))));
}

/** A model loaded from a Hugging Face directory, its weights freed when the Scope closes. */
export function scopedModel(dir: string, options: ModelLoadOptions = {}): Effect.Effect<LoadedModel, BoundaryError, Scope.Scope> {
  return acquireDisposable(boundary(() => loadModel(dir, options)));
}

/** The chat tokenizer of a model directory (pure JS: nothing to release, but its errors are typed). */
export function loadTokenizer(dir: string): Effect.Effect<ChatTokenizer, BoundaryError> {
  return boundary(() => ChatTokenizer.fromDir(dir));
}

/** A model with its tokenizer. A failing tokenizer frees the model already loaded. */
export function scopedModelWithTokenizer(
  dir: string,
  options: ModelLoadOptions = {},
): Effect.Effect<{ model: LoadedModel; tokenizer: ChatTokenizer }, BoundaryError, Scope.Scope> {
  return Effect.gen(function* () {
    const model = yield* scopedModel(dir, options);
    const tokenizer = yield* loadTokenizer(dir);
    return { model, tokenizer };
  });
}

/** Attaches `adapter` to the model's adapter set for the Scope's lifetime; detached and freed on close. */
function attached(model: LoadedModel, make: () => LoraAdapter): Effect.Effect<LoraAdapter, BoundaryError, Scope.Scope> {
  return Effect.acquireRelease(
    boundary(() => {
      const adapter = make();
      try {
        model.decoder.adapters.attach(adapter);
      } catch (error) {
        adapter.dispose();
        throw error;
      }
      return adapter;
    }),
    (adapter) =>
      Effect.sync(() => {
        model.decoder.adapters.detach(adapter);
        adapter.dispose();
      }),
  );
}

/** A new LoRA adapter (PEFT init) attached to `model` while the Scope is open. */
export function scopedLoraAdapter(
  model: LoadedModel,
  config: LoraConfig,
  options: { name?: string; initB?: "zeros" | "random" } = {},
): Effect.Effect<LoraAdapter, BoundaryError, Scope.Scope> {
  return attached(model, () => LoraAdapter.create(model.spec, config, { ...options, device: model.decoder.device }));
}

/** A PEFT adapter directory loaded and attached to `model` while the Scope is open. */
export function scopedPeftAdapter(
  dir: string,
  model: LoadedModel,
  options: { name?: string; trainable?: boolean } = {},
): Effect.Effect<LoraAdapter, BoundaryError, Scope.Scope> {
  return attached(model, () => loadPeftAdapter(dir, model, options));
}

/** A trainable steering vector hooked into `decoder` while the Scope is open (hook removed, vector freed on close). */
export function scopedSteeringVector(
  decoder: Decoder,
  layer: number,
  options: { site?: SteeringSite; alpha?: number; rows?: SteeringRows } = {},
): Effect.Effect<SteeringVector, BoundaryError, Scope.Scope> {
  return Effect.acquireRelease(
    boundary(() => {
      const vector = SteeringVector.create(decoder, layer, options);
      try {
        return { vector, hook: vector.attach(decoder) };
      } catch (error) {
        vector.dispose();
        throw error;
      }
    }),
    ({ vector, hook }) =>
      Effect.sync(() => {
        hook.remove();
        vector.dispose();
      }),
  ).pipe(Effect.map(({ vector }) => vector));
}

/** An optimizer made by `make` (AdamW, SGD ...), its state freed when the Scope closes. */
export function scopedOptimizer<O, Opt extends Optimizer<O>>(make: () => Opt): Effect.Effect<Opt, BoundaryError, Scope.Scope> {
  return acquireDisposable(boundary(make));
}

/** Float32 master copies of `params`, freed when the Scope closes (a failure half way frees the copies made). */
export function scopedMasterWeights(params: ReadonlyMap<string, Tensor>): Effect.Effect<MasterWeights, BoundaryError, Scope.Scope> {
  return acquireDisposable(boundary(() => new MasterWeights(params)));
}

/** `fn` attached at `point` while the Scope is open. */
export function scopedHook(hooks: HookRegistry, point: HookPoint, fn: HookFn): Effect.Effect<HookHandle, InvalidSetupError, Scope.Scope> {
  return acquireDisposable(
    Effect.try({
      try: () => hooks.add(point, fn),
      catch: (error) => new InvalidSetupError({ message: (error as Error).message }),
    }),
  );
}

/** A KV cache for `decoder` (buffers grown on demand), freed when the Scope closes. */
export function scopedKvCache(decoder: Decoder, capacity: number): Effect.Effect<KvCache, never, Scope.Scope> {
  return Effect.acquireRelease(
    Effect.sync(() => new KvCache(decoder.numLayers, capacity)),
    (cache) => Effect.sync(() => cache.dispose()),
  );
}
