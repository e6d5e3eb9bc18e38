/**
 * What a stage implementation receives (its settings, resolved inputs, directory, base model,
 * device, judges, progress and log callbacks) and returns (its outputs and a short summary).
 * Stage implementations call library functions through the small adapters in this folder.
 */
import type { JudgeSpec, Stage } from "../schema.js";

export interface StageContext<S extends Stage = Stage> {
  stage: S;
  /** The stage's own directory (created before the stage runs). */
  dir: string;
  /** Input field -> resolved path. */
  inputs: Record<string, string>;
  baseModel: string;
  device: string;
  dtype: "f32" | "bf16" | "f16";
  judges: Record<string, JudgeSpec>;
  /** Resolves a path written in the experiment file. */
  at: (path: string) => string;
  log: (line: string) => void;
  progress: (label: string, done: number, total: number) => void;
}

export interface StageOutcome {
  outputs: string[];
  summary?: unknown;
}
