/**
 * A steering vector as a training method: one zero-initialised vector added at a layer's site through
 * a hook; the hook is removed and the vector freed when the run's Scope closes. The reference model is
 * the same weights with the steering switched off; the artefact is `steering_vector.safetensors`.
 */
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { saveSafetensors } from "../../io/safetensors.js";
import type { LoadedModel } from "../../models/load.js";
import { attempt, type TaggedFailure } from "../attempt.js";
import type { RunConfig } from "../config.js";
import type { Batch } from "../data.js";
import { initSteeringFrom } from "../init-from.js";
import { SteeringVector } from "../steering.js";
import type { TrainingMethod } from "./method.js";

export const steeringMethod = (config: RunConfig, model: LoadedModel): Effect.Effect<TrainingMethod, TaggedFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const s = config.steering!;
    const steering = yield* Effect.acquireRelease(
      attempt(() => SteeringVector.create(model.decoder, s.layer, { site: s.site, alpha: s.alpha, rows: s.rows, source: model.dir })),
      (vector) => Effect.sync(() => vector.dispose()),
    );
    yield* Effect.acquireRelease(
      Effect.sync(() => steering.attach(model.decoder)),
      (handle) => Effect.sync(() => handle.remove()),
    );
    if (config.init_from) yield* attempt(() => initSteeringFrom(config.init_from!, steering, model));
    const artefactPath = (out: string) => join(out, "steering_vector.safetensors");
    return {
      kind: "steering",
      trainables: new Map([["steering.vector", steering.vector]]),
      referenceLogits: (b: Batch) =>
        steering.withoutSteering(() => model.decoder.forward(b.ids, { attentionMask: b.attentionMask }).logits!),
      artefactPath,
      saveArtefact: (out: string) => {
        const artefact = artefactPath(out);
        saveSafetensors(
          artefact,
          { vector: steering.vector },
          { layer: String(steering.layer), site: steering.site, alpha: String(steering.alpha) },
        );
        return artefact;
      },
    } satisfies TrainingMethod;
  });
