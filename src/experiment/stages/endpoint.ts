/**
 * A sample stage with `endpoint: { url, model, api_key_env?, concurrency? }`: its rows come from an
 * OpenAI-compatible server (src/eval/remote-sample.ts) instead of the local engine, with the stage's
 * seed, chunks and resume. The served `model` selects base model, LoRA module or steering, so the
 * stage takes no `solution` (schema.ts refuses it); the key is read from the environment variable `api_key_env` names.
 */
import { Effect } from "effect";
import { redact, registerSecret } from "../../eval/judge/redact.js";
import type { Question } from "../../eval/questions.js";
import { type RemoteSamplingError, sampleResponsesRemoteEffect } from "../../eval/remote-sample.js";
import type { ResultsFile } from "../../eval/results.js";
import { attempt, type TaggedFailure } from "../../train/attempt.js";
import { endpointKey } from "../preflight.js";
import type { StageOf } from "../schema.js";
import type { StageContext } from "./context.js";
import { stageSampleOptions } from "./sample-options.js";

/** Samples the stage's missing rows from its endpoint; interrupted, it aborts the requests in flight (the rows before are kept). */
export const sampleThroughEndpoint = (
  ctx: StageContext<StageOf<"sample">>,
  questions: readonly Question[],
  results: ResultsFile,
  out: string,
): Effect.Effect<void, TaggedFailure | RemoteSamplingError> =>
  Effect.gen(function* () {
    const s = ctx.stage;
    const endpoint = s.endpoint!;
    const apiKey = yield* attempt(() => endpointKey(s, ctx.file, ctx.path));
    if (apiKey !== null) registerSecret(apiKey);
    ctx.log(redact(`sampling through ${endpoint.url} (model ${endpoint.model})`));
    const added = yield* sampleResponsesRemoteEffect(
      {
        url: endpoint.url,
        model: endpoint.model,
        apiKey,
        ...(endpoint.concurrency === undefined ? {} : { concurrency: endpoint.concurrency }),
      },
      questions,
      results,
      stageSampleOptions(ctx),
    );
    ctx.log(`sampled ${added} new rows (${results.rows.length} in ${out})`);
  });
