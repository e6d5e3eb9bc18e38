/**
 * What `emlab steer` / `emlab ablate` run: a direction (optionally replaced by a seeded random
 * control) added to or projected out of chosen layers while generating answers to one question.
 * The CLI only parses options and prints; programs can call these directly.
 */
import type { GenerateOptions } from "../generate/generate.js";
import { generate } from "../generate/generate.js";
import type { LoadedModel } from "../models/load.js";
import { cat, keep, type Tensor, tidy } from "../tensor/index.js";
import type { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { ablate, type DirectionRows, randomControl, steer, studySteeringControl } from "./interventions.js";

/** same-norm (ours): Gaussian with the direction's norm; study: randn_like(d) * ||d||. */
export type ControlKind = "same-norm" | "study";

/**
 * A seeded random control with the shape of `direction` ([d_model], or one control per row of
 * [layers, d_model], row l seeded seed + l). The caller owns the result; `direction` is untouched.
 */
export function randomControlDirection(direction: Tensor, seed: number, kind: ControlKind): Tensor {
  const make = (v: Tensor, s: number) => (kind === "study" ? studySteeringControl(v, s) : randomControl(v, s));
  return keep(
    tidy(() =>
      direction.ndim === 2
        ? cat(
            Array.from({ length: direction.size(0) }, (_, l) => make(direction.select(0, l), seed + l).unsqueeze(0)),
            0,
          )
        : make(direction, seed),
    ),
  );
}

export interface InterventionRun {
  kind: "steer" | "ablate";
  direction: Tensor;
  layers: readonly number[];
  rows: DirectionRows;
  /** Steering scale (steer only). */
  scale: number;
  question: string;
  /** chat: the chat template with a generation prompt; study: the raw question + "\n". */
  format: "chat" | "study";
  samples: number;
  eosTokenIds: readonly number[];
  sampling: Omit<GenerateOptions, "samples" | "eosTokenIds">;
}

/** Generates `samples` answers with the intervention in place (removed afterwards, also on error). */
export function generateWithIntervention(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  run: InterventionRun,
): { texts: string[]; outputIds: number[][] } {
  const handles =
    run.kind === "steer"
      ? steer(model.decoder, run.direction, run.layers, run.scale, run.rows)
      : ablate(model.decoder, run.direction, run.layers, run.rows);
  try {
    const ids =
      run.format === "study"
        ? tokenizer.encode(`${run.question}\n`)
        : tokenizer.encodeChat([{ role: "user", content: run.question }], { addGenerationPrompt: true });
    const result = generate(model.decoder, [ids], null, { ...run.sampling, samples: run.samples, eosTokenIds: [...run.eosTokenIds] });
    return { texts: result.newIds.map((row) => tokenizer.decode(row, { skipSpecialTokens: true })), outputIds: result.outputIds };
  } finally {
    for (const h of handles) h.remove();
  }
}
