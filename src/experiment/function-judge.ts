/**
 * Judges written as TypeScript (or JavaScript) functions: the typed interface users implement, and
 * loading one by module path and export name from an experiment file
 * (`judges: { exact: { kind: function, module: ./judge.ts, export: exactJudge } }`). A function judge
 * returns every score it gives for a row at once, e.g. `{ aligned: 100, coherent: 100 }`, or null for
 * a score it cannot give; rule-based judges of tasks with a ground truth are one line each.
 * `.ts` modules load through tsx when the command does not already run under it.
 */
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { Data } from "effect";

export interface FunctionJudgeInput {
  /** The question as asked (the paraphrase). */
  question: string;
  questionId: string;
  /** The model's answer. */
  answer: string;
}

/** Scores (0-100, null: no score) by judge name for one answer. */
export type FunctionJudgeScores = Readonly<Record<string, number | null>>;

/** A rule-based or programmatic judge. */
export type FunctionJudge = (input: FunctionJudgeInput) => FunctionJudgeScores | Promise<FunctionJudgeScores>;

export class FunctionJudgeError extends Data.TaggedError("FunctionJudgeError")<{ readonly message: string; readonly module: string }> {}

/** Imports `exportName` (default: `judge`, then the default export) from `modulePath` and checks it is a function. */
export async function loadFunctionJudge(modulePath: string, exportName?: string): Promise<FunctionJudge> {
  if (!existsSync(modulePath)) throw new FunctionJudgeError({ message: `${modulePath}: no such judge module`, module: modulePath });
  let module: Record<string, unknown>;
  try {
    module = await importModule(modulePath);
  } catch (error) {
    throw new FunctionJudgeError({
      message: `${modulePath}: cannot import (${(error as Error).message.split("\n")[0]})`,
      module: modulePath,
    });
  }
  const candidate = exportName !== undefined ? module[exportName] : (module.judge ?? module.default);
  if (typeof candidate !== "function") {
    const exported = Object.keys(module).join(", ") || "nothing";
    throw new FunctionJudgeError({
      message: `${modulePath}: export ${exportName ?? "judge (or default)"} is not a function (it exports ${exported})`,
      module: modulePath,
    });
  }
  return candidate as FunctionJudge;
}

async function importModule(path: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(path).href;
  if (!/\.(c|m)?tsx?$/.test(path)) return (await import(url)) as Record<string, unknown>;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (error) {
    // Plain Node cannot import TypeScript: use tsx's loader for this one module.
    const code = (error as { code?: string }).code;
    if (code !== "ERR_UNKNOWN_FILE_EXTENSION" && !String(error).includes("Unknown file extension")) throw error;
    const api = (await import("tsx/esm/api").catch(() => null)) as {
      tsImport?: (p: string, parent: string) => Promise<Record<string, unknown>>;
    } | null;
    if (!api?.tsImport) throw new Error("a .ts judge module needs tsx installed (npm install tsx), or compile it to .js");
    return api.tsImport(url, import.meta.url);
  }
}

/** Scores of `judge` for one row, checked: numbers in [0, 100] or null. */
export async function runFunctionJudge(judge: FunctionJudge, input: FunctionJudgeInput, module: string): Promise<FunctionJudgeScores> {
  const scores = await judge(input);
  if (!scores || typeof scores !== "object")
    throw new FunctionJudgeError({
      message: `${module}: the judge returned ${JSON.stringify(scores)}, expected an object of scores`,
      module,
    });
  for (const [name, value] of Object.entries(scores)) {
    if (value !== null && (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 100)) {
      throw new FunctionJudgeError({
        message: `${module}: score ${name} = ${JSON.stringify(value)} is not a number in 0..100 or null`,
        module,
      });
    }
  }
  return scores;
}
