/**
 * The sampling options a sample / steer / ablate stage gives the engine, whether its rows come from the
 * local model (evaluate.ts) or from an endpoint (endpoint.ts): the stage's fields with the study's defaults
 * (600 new tokens, temperature 1, top-p 1, seed 0), and progress reported under "sample".
 */
import type { SampleOptions } from "../../eval/sample.js";
import type { StageOf } from "../schema.js";
import type { StageContext } from "./context.js";

export type SamplingStage = StageOf<"sample"> | StageOf<"steer"> | StageOf<"ablate">;

export function stageSampleOptions(ctx: StageContext<SamplingStage>): SampleOptions {
  const s = ctx.stage;
  return {
    samples: s.samples,
    maxNewTokens: s.max_new_tokens ?? 600,
    temperature: s.temperature ?? 1,
    topP: s.top_p ?? 1,
    seed: s.seed ?? 0,
    chunkSize: s.chunk_size,
    system: s.system,
    onChunk: (d, t) => ctx.progress("sample", d, t),
  };
}
