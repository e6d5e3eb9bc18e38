/**
 * A sample stage with `endpoint: { url, model, api_key_env?, concurrency? }`: its rows come from an
 * OpenAI-compatible server (src/eval/remote-sample.ts) instead of the local engine, with the stage's
 * seed, chunks and resume. The served `model` selects base model, LoRA module or steering, so the
 * stage takes no `solution` (schema.ts refuses it); the key is read from the environment variable `api_key_env` names.
 */
import { redact, registerSecret } from "../../eval/judge/redact.js";
import type { Question } from "../../eval/questions.js";
import { sampleResponsesRemote } from "../../eval/remote-sample.js";
import type { ResultsFile } from "../../eval/results.js";
import type { StageOf } from "../schema.js";
import type { StageContext } from "./context.js";

export async function sampleThroughEndpoint(
  ctx: StageContext<StageOf<"sample">>,
  questions: readonly Question[],
  results: ResultsFile,
  out: string,
): Promise<void> {
  const s = ctx.stage;
  const endpoint = s.endpoint!;
  let apiKey: string | null = null;
  if (endpoint.api_key_env !== undefined) {
    apiKey = process.env[endpoint.api_key_env] ?? "";
    if (apiKey === "")
      throw new RangeError(`${s.name}: endpoint.api_key_env: the environment variable ${endpoint.api_key_env} is not set or empty`);
    registerSecret(apiKey);
  }
  if (endpoint.concurrency !== undefined && !(Number.isInteger(endpoint.concurrency) && endpoint.concurrency >= 1))
    throw new RangeError(`${s.name}: endpoint.concurrency must be a positive integer`);
  ctx.log(redact(`sampling through ${endpoint.url} (model ${endpoint.model})`));
  const added = await sampleResponsesRemote(
    {
      url: endpoint.url,
      model: endpoint.model,
      apiKey,
      ...(endpoint.concurrency === undefined ? {} : { concurrency: endpoint.concurrency }),
    },
    questions,
    results,
    {
      samples: s.samples,
      maxNewTokens: s.max_new_tokens ?? 600,
      temperature: s.temperature ?? 1,
      topP: s.top_p ?? 1,
      seed: s.seed ?? 0,
      chunkSize: s.chunk_size,
      system: s.system,
      onChunk: (d, t) => ctx.progress("sample", d, t),
    },
  );
  ctx.log(`sampled ${added} new rows (${results.rows.length} in ${out})`);
}
