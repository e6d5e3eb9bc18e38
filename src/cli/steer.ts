/** `emlab steer`: generate with scale * direction added to chosen layers (options and run in intervention.ts). */
import { interventionOptions, runIntervention } from "./intervention.js";
import { defineCommand } from "./options.js";

export const steerCommand = defineCommand({
  name: "steer",
  summary: "Generate with scale * direction added to the chosen layers' output at every position.",
  options: {
    ...interventionOptions,
    scale: { type: "string", value: "S", default: "8", description: "steering scale" },
  },
});

export function runSteer(argv: readonly string[]): Promise<number> | number {
  return runIntervention("steer", steerCommand, argv);
}
