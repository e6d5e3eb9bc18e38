/**
 * The live misalignment monitor as an Effect program over the ModelService: the direction file is
 * loaded for the program (its row at the monitored layer when it has one per layer) and freed when the
 * Scope closes; the generation itself is src/analysis/monitor.ts, unchanged (probe and ablation hooks
 * removed when it ends). A missing direction or a layer the model lacks fails typed.
 */
import { Effect, type Scope } from "effect";
import { type MonitorEvent, type MonitorOptions, monitorGeneration } from "../analysis/monitor.js";
import { tidy } from "../tensor/index.js";
import { scopedDirectionFile } from "./analysis-programs.js";
import { type BoundaryError, boundary, InvalidSetupError } from "./errors.js";
import { ModelService } from "./services.js";

export interface MonitorProgramOptions extends Omit<MonitorOptions, "direction" | "eosTokenIds"> {
  /** Direction file ([layers, d_model]: its row at `layer` is used; or [d_model]). */
  direction: string;
  /** The user message, encoded with the chat template and a generation prompt. */
  prompt: string;
  /** Ids that end the answer (default: none, so it runs to maxNewTokens). */
  eosTokenIds?: readonly number[];
}

export interface MonitorResult {
  events: MonitorEvent[];
  /** The direction was being projected out at the end. */
  ablated: boolean;
  /** The generated ids and their text (special tokens skipped). */
  newIds: number[];
  text: string;
}

/** Generates an answer to `prompt` while projecting each new token's activation at `layer` onto the direction. */
export function monitorProgram(options: MonitorProgramOptions): Effect.Effect<MonitorResult, BoundaryError, ModelService | Scope.Scope> {
  return Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const layers = model.spec.layers.length;
    if (!Number.isInteger(options.layer) || options.layer < 0 || options.layer >= layers)
      return yield* new InvalidSetupError({ message: `monitor: layer ${options.layer} is not a layer of this model (0..${layers - 1})` });
    const direction = yield* scopedDirectionFile(options.direction, model);
    if (direction.ndim === 2 && options.layer >= direction.size(0))
      return yield* new InvalidSetupError({
        message: `${options.direction}: ${direction.size(0)} rows, no row for layer ${options.layer}`,
      });
    const { direction: _, prompt, ...rest } = options;
    return yield* boundary(() =>
      tidy(() => {
        const row = direction.ndim === 2 ? direction.select(0, options.layer) : direction;
        const ids = tokenizer.encodeChat([{ role: "user", content: prompt }], { addGenerationPrompt: true });
        const { result, events, ablated } = monitorGeneration(model.decoder, [ids], null, {
          ...rest,
          direction: row,
          eosTokenIds: [...(options.eosTokenIds ?? [])],
        });
        const newIds = result.newIds[0]!;
        return { events, ablated, newIds, text: tokenizer.decode(newIds, { skipSpecialTokens: true }) };
      }),
    );
  });
}
