/**
 * The analysis commands: direction, steer, ablate, efficiency, compare-norms, stability, significance,
 * gradients, monitor, one file each (src/cli/<command>.ts: options declared once, parse, build the
 * model layer, run the analysis's Effect program from src/effect through the interruptible runtime, print). Outputs are safetensors (directions), CSV (curves) or JSONL (events,
 * gradients) files, and progress on stderr. This file only lists them for main.ts.
 */
import { ablateCommand, runAblate } from "./ablate.js";
import { UsageError } from "./args.js";
import { compareNormsCommand, runCompareNorms } from "./compare-norms.js";
import { directionCommand, runDirection } from "./direction.js";
import { efficiencyCommand, runEfficiency } from "./efficiency.js";
import { gradientsCommand, runGradients } from "./gradients.js";
import { monitorCommand, runMonitor } from "./monitor.js";
import type { CommandSpec } from "./options.js";
import { runSignificance, significanceCommand } from "./significance.js";
import { runStability, stabilityCommand } from "./stability.js";
import { runSteer, steerCommand } from "./steer.js";

/** The analysis commands, each with its option table (help and usage come from it). */
export const analysisSpecs: readonly CommandSpec[] = [
  directionCommand,
  steerCommand,
  ablateCommand,
  efficiencyCommand,
  compareNormsCommand,
  stabilityCommand,
  significanceCommand,
  gradientsCommand,
  monitorCommand,
] as never;

export function runAnalysis(command: string, argv: readonly string[]): Promise<number> | number {
  switch (command) {
    case "direction":
      return runDirection(argv);
    case "steer":
      return runSteer(argv);
    case "ablate":
      return runAblate(argv);
    case "efficiency":
      return runEfficiency(argv);
    case "compare-norms":
      return runCompareNorms(argv);
    case "stability":
      return runStability(argv);
    case "significance":
      return runSignificance(argv);
    case "gradients":
      return runGradients(argv);
    case "monitor":
      return runMonitor(argv);
    default:
      throw new UsageError(`unknown analysis command ${command}`);
  }
}

export const analysisCommands = analysisSpecs.map((spec) => spec.name);
