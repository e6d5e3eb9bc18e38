/**
 * `emlab organism DIR [--seed 0]`: writes the miniature model organism of the demo (a tiny random
 * chat model with a character tokenizer in DIR/model, its synthetic data in DIR/data); a no-op for
 * files already there.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeOrganismData, writeOrganismModel } from "../organism/write.js";
import { parseNumber, UsageError } from "./args.js";

export function runOrganism(argv: readonly string[]): number {
  const { values, positionals } = parseArgs({ args: [...argv], options: { seed: { type: "string" } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UsageError("organism needs exactly one directory");
  const seed = parseNumber("--seed", values.seed, { integer: true, min: 0 }) ?? 0;
  writeOrganismModel(join(positionals[0]!, "model"), { seed });
  const files = writeOrganismData(join(positionals[0]!, "data"), { seed });
  process.stdout.write(`${JSON.stringify({ model: join(positionals[0]!, "model"), ...files })}\n`);
  return 0;
}
