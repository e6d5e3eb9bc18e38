/**
 * LoRA as a training method: the run's adapters (created from `config.lora`, or handed in by the
 * caller) are attached for the run and detached (created ones also freed) when the run's Scope
 * closes; the reference model is the same weights with the adapters switched off; the artefact is a
 * PEFT adapter directory (one per adapter under `adapter/<name>` when there are several).
 */
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { LoraAdapter } from "../../adapters/lora.js";
import { savePeftAdapter } from "../../adapters/peft.js";
import { pathInside } from "../../io/output.js";
import type { LoadedModel } from "../../models/load.js";
import type { Tensor } from "../../tensor/index.js";
import type { RunConfig } from "../config.js";
import type { Batch } from "../data.js";
import { initLoraFrom } from "../init-from.js";
import { attempt, type TaggedFailure } from "../attempt.js";
import type { TrainingMethod } from "./method.js";

/** Attaches `adapter` to `model` for the life of the Scope (no-op when it is attached already). */
const attached = (model: LoadedModel, adapter: LoraAdapter): Effect.Effect<void, never, Scope.Scope> =>
  model.decoder.adapters.list.includes(adapter)
    ? Effect.void
    : Effect.acquireRelease(
        Effect.sync(() => model.decoder.adapters.attach(adapter)),
        () => Effect.sync(() => model.decoder.adapters.detach(adapter)),
      );

/** A fresh adapter from one `config.lora` entry, freed when the Scope closes. */
const created = (model: LoadedModel, l: RunConfig["lora"][number]): Effect.Effect<LoraAdapter, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      LoraAdapter.create(
        model.spec,
        {
          r: l.r,
          alpha: l.alpha,
          useRslora: l.use_rslora,
          dropout: l.dropout,
          targetModules: l.target_modules,
          layersToTransform: l.layers_to_transform,
        },
        { name: l.name, initB: l.init_b, device: model.decoder.device },
      ),
    ),
    (adapter) => Effect.sync(() => adapter.dispose()),
  );

/** The LoRA method of a run; `provided` adapters (the caller's) are trained instead of creating `config.lora`'s. */
export const loraMethod = (
  config: RunConfig,
  model: LoadedModel,
  provided: readonly LoraAdapter[] | undefined,
): Effect.Effect<TrainingMethod, TaggedFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const adapters: LoraAdapter[] = [];
    if (provided) adapters.push(...provided);
    else for (const l of config.lora) adapters.push(yield* created(model, l));
    for (const adapter of adapters) yield* attached(model, adapter);
    const trainables = new Map<string, Tensor>();
    for (const adapter of adapters) {
      for (const [module, m] of adapter.modules) {
        trainables.set(`${adapter.name}/${module}.lora_A`, m.A);
        trainables.set(`${adapter.name}/${module}.lora_B`, m.B);
      }
    }
    if (config.init_from) yield* attempt(() => initLoraFrom(config.init_from!, adapters, model));
    const artefactPath = (out: string) => join(out, "adapter");
    return {
      kind: "lora",
      trainables,
      referenceLogits: (b: Batch) =>
        model.decoder.adapters.withoutAdapters(() => model.decoder.forward(b.ids, { attentionMask: b.attentionMask }).logits!),
      artefactPath,
      saveArtefact: (out: string) => {
        const artefact = artefactPath(out);
        for (const adapter of adapters)
          savePeftAdapter(adapters.length === 1 ? artefact : pathInside(artefact, adapter.name), adapter, { baseModel: model.dir });
        return artefact;
      },
    } satisfies TrainingMethod;
  });
