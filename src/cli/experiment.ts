/**
 * `emlab experiment FILE.yaml|json [--model DIR] [--out DIR] [--device D] [--only STAGE] [--from STAGE]
 *  [--dry-run] [--json]`: runs every stage of an experiment file in dependency order into one
 * directory (manifest.json, stages/<name>/), skipping stages that are complete and unchanged and
 * resuming one that was cut short. Progress: a live line per long stage on a TTY, plain lines
 * otherwise; `--json` prints a JSON summary on stdout at the end. `--dry-run` prints the plan.
 * The run is an Effect program under the interruptible runtime: SIGINT / SIGTERM stop the running
 * stage after its current unit of work, keep what it finished (a checkpoint, the rows and scores so
 * far), record it as interrupted in the manifest and exit 130 / 143; the same command resumes it.
 */
import { readManifest } from "../experiment/manifest.js";
import { planExperiment } from "../experiment/plan.js";
import { Effect } from "effect";
import { type ExperimentEvent, experimentProgram, forcedStages, stageKey } from "../experiment/run.js";
import { readExperiment } from "../experiment/schema.js";
import { UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";
import { runInterruptible } from "./runtime.js";

export const experimentCommand = defineCommand({
  name: "experiment",
  summary: "Every stage of an experiment file in dependency order into one directory; skips finished stages, resumes a cut one.",
  positionals: [{ name: "FILE", description: "experiment file (YAML or JSON)" }],
  options: {
    model: {
      type: "string",
      value: "DIR",
      description: "base model for every stage that does not name a trained model (default: the file's model)",
    },
    out: { type: "string", value: "DIR", description: "experiment directory (default: the file's output_dir, else runs/<file name>)" },
    device: { type: "string", value: "DEVICE", description: "device for every stage, e.g. cpu or cuda:0 (default: the file's)" },
    only: { type: "string", value: "STAGE", description: "run only this stage (again, even if complete)" },
    from: { type: "string", value: "STAGE", description: "run this stage and every stage after it (again)" },
    "dry-run": { type: "boolean", description: "print the plan (run / skip / resume per stage) and warnings; write nothing" },
    json: { type: "boolean", description: "print a JSON summary (or plan) on stdout" },
  },
  notes: ["give --only or --from, not both"],
});

export async function runExperimentCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(experimentCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError("experiment needs exactly one experiment file");
  if (values.only !== undefined && values.from !== undefined) throw new UsageError("give --only or --from, not both");
  const experiment = readExperiment(positionals[0]!);
  const plan = planExperiment(experiment, { model: values.model, outputDir: values.out, device: values.device });
  const forced = forcedStages(plan, { only: values.only, from: values.from });

  if (values["dry-run"]) {
    const manifest = readManifest(plan.dir);
    const rows = plan.stages.map((p) => {
      const previous = manifest?.stages[p.stage.name];
      // Keys of stages whose inputs do not exist yet cannot be known: they will run.
      const waiting = p.dependsOn.some((d) => manifest?.stages[d]?.status !== "complete");
      const key = waiting ? null : stageKey(p).key;
      const action =
        forced && !forced.has(p.stage.name)
          ? "leave"
          : forced?.has(p.stage.name)
            ? "run"
            : previous?.status === "complete" && key !== null && previous.key === key
              ? "skip"
              : previous && previous.key === key
                ? "resume"
                : "run";
      return {
        stage: p.stage.name,
        kind: p.stage.kind,
        action,
        after: p.dependsOn,
        base_model: p.baseModel,
        method: p.runConfig?.method ?? null,
        output: p.output,
      };
    });
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({ file: plan.file, dir: plan.dir, model: plan.model, family: plan.family, stages: rows, warnings: plan.warnings })}\n`,
      );
    else {
      process.stdout.write(`experiment ${plan.file}\n  model ${plan.model} (${plan.family ?? "not found"})\n  directory ${plan.dir}\n`);
      for (const r of rows)
        process.stdout.write(
          `  ${r.action.padEnd(6)} ${r.stage} (${r.kind}${r.method ? ` ${r.method}` : ""})${r.after.length ? ` after ${r.after.join(", ")}` : ""}\n`,
        );
      for (const w of plan.warnings) process.stdout.write(`  warning: ${w}\n`);
    }
    return 0;
  }

  // Everything a warning names would make its stage fail: refuse before anything is written.
  if (plan.warnings.length > 0) throw new UsageError(`${plan.file}: cannot run:\n  ${plan.warnings.join("\n  ")}`);
  const tty = process.stderr.isTTY === true;
  const reporters = new Map<string, (done: number, total: number) => void>();
  const onEvent = (e: ExperimentEvent) => {
    switch (e.type) {
      case "stage-start":
        process.stderr.write(`[${e.index + 1}/${e.total}] ${e.stage} (${e.kind})${e.resumed ? " resuming" : ""}\n`);
        break;
      case "stage-skip":
        process.stderr.write(`[${e.index + 1}/${e.total}] ${e.stage} (${e.kind}) complete and unchanged: skipped\n`);
        break;
      case "stage-done":
        process.stderr.write(`${tty ? "\n" : ""}  ${e.stage} done in ${e.wall_s.toFixed(1)}s ${JSON.stringify(e.summary ?? {})}\n`);
        break;
      case "stage-failed":
        process.stderr.write(`${tty ? "\n" : ""}  ${e.stage} FAILED: ${e.error}\n`);
        break;
      case "stage-interrupted":
        process.stderr.write(
          `${tty ? "\n" : ""}  ${e.stage} interrupted: recorded as interrupted in ${plan.dir}/manifest.json; run the same command again to resume it\n`,
        );
        break;
      case "log":
        process.stderr.write(`  ${e.line}\n`);
        break;
      case "progress": {
        const id = `${e.stage}\0${e.label}`;
        if (!reporters.has(id)) reporters.set(id, progressReporter(`  ${e.stage}: ${e.label}`));
        reporters.get(id)!(e.done, e.total);
        break;
      }
    }
  };
  return runInterruptible(
    experimentProgram(plan, { only: values.only, from: values.from, onEvent }).pipe(
      Effect.map((summary) => {
        if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        else process.stdout.write(`experiment ${summary.ok ? "complete" : "INCOMPLETE"}: ${plan.dir}\n`);
        return summary.ok ? 0 : 1;
      }),
    ),
  );
}
