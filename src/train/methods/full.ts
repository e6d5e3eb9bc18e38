/**
 * Full fine-tuning as a training method: the model's own parameters (all, or those whose name matches
 * `full.parameters`) train. With a KL term the reference is a frozen copy of the model loaded from the
 * same directory, owned by the run's Scope (released even when a later set-up stage fails); the
 * artefact is a model directory (model.safetensors plus the config and tokenizer files).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { makeOutputDir, writeOutputFile } from "../../io/output.js";
import { saveSafetensors } from "../../io/safetensors.js";
import { type LoadedModel, loadModel } from "../../models/load.js";
import type { Device, Tensor } from "../../tensor/index.js";
import { attempt, type TaggedFailure } from "../attempt.js";
import type { RunConfig } from "../config.js";
import type { Batch } from "../data.js";
import { enterStage, type InjectedStageFailure } from "../setup-stages.js";
import type { TrainingMethod } from "./method.js";

const logitsOf = (m: LoadedModel) => (b: Batch) => m.decoder.forward(b.ids, { attentionMask: b.attentionMask }).logits!;

export const fullMethod = (
  config: RunConfig,
  model: LoadedModel,
): Effect.Effect<TrainingMethod, TaggedFailure | InjectedStageFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const pattern = config.full.parameters ? new RegExp(config.full.parameters) : null;
    const trainables = new Map<string, Tensor>();
    for (const [name, p] of model.parameters) if (!pattern || pattern.test(name)) trainables.set(name, p.requiresGrad_());
    let referenceLogits = logitsOf(model);
    if (config.kl) {
      yield* enterStage("reference");
      // Full SFT changes the weights themselves: the reference is a frozen copy.
      const frozen = yield* Effect.acquireRelease(
        attempt(() => loadModel(model.dir, { dtype: config.training.dtype, device: config.training.device as Device })),
        (copy) => Effect.sync(() => copy.dispose()),
      );
      referenceLogits = logitsOf(frozen);
    }
    const artefactPath = (out: string) => join(out, "model");
    return {
      kind: "full",
      trainables,
      referenceLogits,
      artefactPath,
      saveArtefact: (out: string) => {
        const artefact = artefactPath(out);
        makeOutputDir(artefact);
        saveSafetensors(join(artefact, "model.safetensors"), model.parameters, { format: "pt" });
        for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]) {
          if (existsSync(join(model.dir, f))) writeOutputFile(join(artefact, f), readFileSync(join(model.dir, f)));
        }
        return artefact;
      },
    } satisfies TrainingMethod;
  });
