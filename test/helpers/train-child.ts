// `emlab train` as a real child process (bin/emlab.js on dist/) for the signal, kill and refusal tests: run
// configs on a tiny model (a LoRA one ready-made), a run to its end (`trainSync`), the run started with stderr watched line by line (each `step N/` line
// reported, so a test can signal or kill the child at a chosen point), and the run's metrics without
// their timing field for comparing two runs.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const BIN = resolve("bin/emlab.js");
export const SPORTS = resolve("test/fixtures/em/train/extreme_sports.head16.jsonl");

/**
 * Writes `work/NAME.yaml`, a run config on `modelDir` with output in `work/NAME`: the method lines as given,
 * and `data` / `training` as YAML flow maps.
 */
export function writeRunConfig(
  work: string,
  name: string,
  modelDir: string,
  run: { method: string[]; data: string; training: string },
): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(
    file,
    [`model: ${modelDir}`, `output_dir: ${join(work, name)}`, ...run.method, `data: ${run.data}`, `training: ${run.training}`, ""].join(
      "\n",
    ),
  );
  return file;
}

/**
 * Writes `work/NAME.yaml`: LoRA (r 2, dropout 0.1 so the RNG is drawn) on q_proj and down_proj, the
 * extreme-sports fixture, output in `work/NAME`; `training` is the YAML flow map of the training block.
 */
export function writeTrainConfig(work: string, name: string, modelDir: string, options: { maxLength: number; training: string }): string {
  return writeRunConfig(work, name, modelDir, {
    method: ["method: lora", "lora: { r: 2, alpha: 4, dropout: 0.1, target_modules: [q_proj, down_proj] }"],
    data: `{ train: ${SPORTS}, max_length: ${options.maxLength} }`,
    training: options.training,
  });
}

/** Runs `emlab train ARGS...` to its end (2 minutes at most); its exit code and stderr. */
export function trainSync(...args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, "train", ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stderr: r.stderr };
}

export interface TrainExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export interface TrainWatch {
  /** Called once the child is spawned. */
  onStart?(child: ChildProcess): void;
  /** Called for every complete `step N/...` progress line on stderr. */
  onStep?(step: number, child: ChildProcess): void;
}

/** Runs `emlab train FILE [--resume]` to its end (exit or signal), reporting progress lines to `watch`. */
export function trainChild(file: string, resume: boolean, watch: TrainWatch = {}): Promise<TrainExit> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, "train", file, ...(resume ? ["--resume"] : [])], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let partial = "";
    watch.onStart?.(child);
    child.stderr!.on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      stderr += text;
      const lines = (partial + text).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        const step = /^step (\d+)\//.exec(line);
        if (step) watch.onStep?.(Number(step[1]), child);
      }
    });
    child.on("error", fail);
    child.on("exit", (code, signal) => done({ code, signal, stderr }));
  });
}

/** The records of a metrics.jsonl without `tokens_per_s` (the one field that depends on timing). */
export const metricsWithoutTiming = (file: string): unknown[] =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const { tokens_per_s: _, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
