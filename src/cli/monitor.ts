/** `emlab monitor`: parses options, runs monitorProgram (src/effect/monitor-program.ts), prints events as JSONL. */
import { Effect } from "effect";
import { monitorProgram } from "../effect/monitor-program.js";
import { ModelService } from "../effect/services.js";
import { parseNumber, required } from "./args.js";
import { runWithModel, writeOutputs } from "./analysis-options.js";
import { parseOrHelp, samplingFrom, samplingOptions, stopIds } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";

export const monitorCommand = defineCommand({
  name: "monitor",
  summary: "Live per-token projection onto a direction while generating, with a threshold alarm and optional on-line ablation.",
  options: {
    ...modelOptions,
    ...samplingOptions("256"),
    direction: { type: "string", value: "FILE", required: true, description: "direction file" },
    layer: { type: "string", value: "L", required: true, description: "layer whose output is projected" },
    threshold: { type: "string", value: "T", required: true, description: "alarm when the projection exceeds T" },
    prompt: { type: "string", value: "TEXT", required: true, description: "a user message, encoded with the chat template" },
    "ablate-on-alarm": {
      type: "boolean",
      description: "project the direction out from the first alarm on (the printed projection is then the ablated one)",
    },
  },
});

export function runMonitor(argv: readonly string[]): Promise<number> | number {
  const parsed = parseOrHelp(monitorCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const options = {
    direction: required("--direction", values.direction),
    layer: required("--layer", parseNumber("--layer", values.layer, { integer: true, min: 0 })),
    threshold: required("--threshold", parseNumber("--threshold", values.threshold)),
    prompt: required("--prompt", values.prompt),
    ablateOnAlarm: values["ablate-on-alarm"],
  };
  const program = Effect.gen(function* () {
    const { model, tokenizer } = yield* ModelService;
    const result = yield* monitorProgram({
      ...options,
      ...samplingFrom(values, model),
      eosTokenIds: stopIds(model, tokenizer),
      onEvent: (e) => process.stdout.write(`${JSON.stringify({ ...e, text: tokenizer.decode([e.token]) })}\n`),
    });
    return yield* writeOutputs(() =>
      process.stdout.write(`${JSON.stringify({ done: true, ablated: result.ablated, text: result.text })}\n`),
    );
  });
  return runWithModel(values, program);
}
