/**
 * The `emlab` command line. Thin: parses arguments and calls one library function per command. Every
 * command declares its options once (src/cli/options.ts); `emlab --help` lists each command's complete
 * usage line from those tables, and `emlab COMMAND --help` every option with its default.
 */
import { redact } from "../eval/judge/redact.js";
import { analysisCommands, analysisSpecs, runAnalysis } from "./analysis.js";
import { UsageError } from "./args.js";
import { chatCommand, runChat } from "./chat.js";
import { doctorCommand, runDoctor } from "./doctor.js";
import { experimentCommand, runExperimentCommand } from "./experiment.js";
import { organismCommand, runOrganism } from "./organism.js";
import { reportCommand, runReportCommand } from "./report.js";
import { evalCommand, runEval } from "./eval.js";
import { forwardCommand, runForward } from "./forward.js";
import { generateCommand, runGenerate } from "./generate.js";
import { judgeCommand, runJudge } from "./judge.js";
import { klDataCommand, runKlData } from "./kl-data.js";
import { metricsCommand, runMetrics } from "./metrics.js";
import { type CommandSpec, usageLine } from "./options.js";
import { runServe, serveCommand } from "./serve.js";
import { runTrain, trainCommand } from "./train.js";

/** Every command, in the order `emlab --help` lists them. */
export const commands: readonly CommandSpec[] = [
  doctorCommand,
  forwardCommand,
  generateCommand,
  chatCommand,
  evalCommand,
  judgeCommand,
  metricsCommand,
  trainCommand,
  klDataCommand,
  ...analysisSpecs,
  experimentCommand,
  reportCommand,
  organismCommand,
  serveCommand,
] as never;

export function usage(): string {
  const blocks = commands.map((spec) => `  ${usageLine(spec).replace(/\n/g, "\n  ")}\n      ${spec.summary}`);
  return `usage: emlab <command> [options]   (emlab <command> --help lists every option with its default)\n\ncommands:\n${blocks.join("\n")}\n`;
}

/** Runs a command; usage errors print a message and return 2, other typed errors 1. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`emlab: ${redact((error as Error).message)}\n`);
      return 2;
    }
    const tag = (error as { _tag?: string })._tag;
    process.stderr.write(`emlab: ${tag ? `${tag}: ` : ""}${redact(String((error as Error)?.message ?? error))}\n`);
    return 1;
  }
}

async function dispatch(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "forward":
      return runForward(rest);
    case "generate":
      return runGenerate(rest);
    case "chat":
      return runChat(rest);
    case "eval":
      return runEval(rest);
    case "judge":
      return runJudge(rest);
    case "metrics":
      return runMetrics(rest);
    case "train":
      return runTrain(rest);
    case "kl-data":
      return runKlData(rest);
    case "experiment":
      return runExperimentCommand(rest);
    case "report":
      return runReportCommand(rest);
    case "organism":
      return runOrganism(rest);
    case "serve":
      return runServe(rest);
    case "doctor":
      return runDoctor(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      if (command === "help" && rest[0] !== undefined) return dispatch([rest[0], "--help"]);
      (command === undefined ? process.stderr : process.stdout).write(usage());
      return command === undefined ? 2 : 0;
    default:
      if (analysisCommands.includes(command)) return runAnalysis(command, rest);
      process.stderr.write(`emlab: unknown command ${JSON.stringify(command)}\n${usage()}`);
      return 2;
  }
}
