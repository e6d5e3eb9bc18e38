/** `emlab monitor`: parses options, runs the monitored generation (src/analysis/monitor.ts), prints events as JSONL. */
import { loadDirection } from "../analysis/files.js";
import { monitorGeneration } from "../analysis/monitor.js";
import { keep, tidy } from "../tensor/index.js";
import { parseNumber, required } from "./args.js";
import { withModel } from "./analysis-options.js";
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

export function runMonitor(argv: readonly string[]): number {
  const parsed = parseOrHelp(monitorCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  return withModel(values, (model, tokenizer) => {
    const layer = required("--layer", parseNumber("--layer", values.layer, { integer: true, min: 0 }));
    const direction = loadDirection(required("--direction", values.direction), model.decoder.device);
    try {
      const row = direction.ndim === 2 ? keep(tidy(() => direction.select(0, layer))) : direction;
      const ids = tokenizer.encodeChat([{ role: "user", content: required("--prompt", values.prompt) }], { addGenerationPrompt: true });
      const { result, ablated } = monitorGeneration(model.decoder, [ids], null, {
        ...samplingFrom(values, model),
        eosTokenIds: stopIds(model, tokenizer),
        layer,
        direction: row,
        threshold: required("--threshold", parseNumber("--threshold", values.threshold)),
        ablateOnAlarm: values["ablate-on-alarm"],
        onEvent: (e) => process.stdout.write(`${JSON.stringify({ ...e, text: tokenizer.decode([e.token]) })}\n`),
      });
      if (row !== direction) row.dispose();
      process.stdout.write(
        `${JSON.stringify({ done: true, ablated, text: tokenizer.decode(result.newIds[0]!, { skipSpecialTokens: true }) })}\n`,
      );
      return 0;
    } finally {
      direction.dispose();
    }
  });
}
