/**
 * The experiment directory's manifest (`manifest.json`): per stage its kind, key (hash of its
 * settings and input hashes), inputs with their content hashes, outputs, wall time, status
 * (running / complete / failed / interrupted) and a short summary. Rewritten atomically on every change,
 * so a killed run leaves a readable manifest whose `running` or `interrupted` stages are the ones to resume.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ExperimentInputError } from "./errors.js";

/** `interrupted`: stopped by a signal after keeping what it had (a checkpoint, the rows and scores so far). */
export type StageStatus = "running" | "complete" | "failed" | "interrupted";

export interface StageRecord {
  kind: string;
  key: string;
  status: StageStatus;
  inputs: Record<string, { path: string; hash: string | null }>;
  outputs: string[];
  started: string;
  finished: string | null;
  /** Seconds spent in this stage, summed over every attempt with the same key. */
  wall_s: number;
  attempts: number;
  summary?: unknown;
  error?: string;
}

export interface Manifest {
  experiment: string;
  model: string | null;
  stages: Record<string, StageRecord>;
  /** Stage names in plan order (for readers such as the report). */
  order: string[];
  /** The experiment file's report settings. */
  report?: { title?: string; summary?: string; baseline?: string; in_domain?: readonly string[] };
}

export const manifestPath = (dir: string): string => join(dir, "manifest.json");

export function readManifest(dir: string): Manifest | null {
  const file = manifestPath(dir);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Manifest;
  } catch (error) {
    throw new ExperimentInputError({
      message: `${file}: unreadable manifest (${(error as Error).message}); move it away to start over`,
      file,
      field: "manifest.json",
    });
  }
}

export function writeManifest(dir: string, manifest: Manifest): void {
  const file = manifestPath(dir);
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.tmp-${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(temporary, file);
}
