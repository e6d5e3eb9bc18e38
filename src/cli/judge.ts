/**
 * `emlab judge RESULTS (--questions FILE | --judges FILE) [--judge-names aligned,coherent]
 *  [--judge-model M --base-url URL | --azure-endpoint URL | --local-judge DIR] [--concurrency 8] [--cache FILE]`:
 * adds (or completes) judge columns in a results file (CSV or JSONL).
 */
import { parseArgs } from "node:util";
import { ResultsFile } from "../eval/results.js";
import { UsageError } from "./args.js";
import { judgeFlags, judgeResultsFile } from "./judge-options.js";

export async function runJudge(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], options: judgeFlags, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UsageError("judge needs exactly one results file");
  const summary = await judgeResultsFile(ResultsFile.read(positionals[0]!), values);
  return summary.failed > 0 ? 1 : 0;
}
