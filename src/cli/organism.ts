/**
 * `emlab organism DIR [--seed 0]`: writes the miniature model organism of the demo (a tiny random
 * chat model with a character tokenizer in DIR/model, its synthetic data in DIR/data); a no-op for
 * files already there.
 */
import { join } from "node:path";
import { writeOrganismData, writeOrganismModel } from "../organism/write.js";
import { parseNumber } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { defineCommand } from "./options.js";

export const organismCommand = defineCommand({
  name: "organism",
  summary: "The demo's miniature model organism: a tiny chat model (random weights, character tokenizer) and its synthetic tasks.",
  positionals: [{ name: "DIR", description: "where model/ and data/ go (files already there are kept)" }],
  options: { seed: { type: "string", value: "N", default: "0", description: "seed of the random weights and the data" } },
});

export function runOrganism(argv: readonly string[]): number {
  const parsed = parseOrHelp(organismCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const seed = parseNumber("--seed", values.seed, { integer: true, min: 0 })!;
  writeOrganismModel(join(positionals[0]!, "model"), { seed });
  const files = writeOrganismData(join(positionals[0]!, "data"), { seed });
  process.stdout.write(`${JSON.stringify({ model: join(positionals[0]!, "model"), ...files })}\n`);
  return 0;
}
