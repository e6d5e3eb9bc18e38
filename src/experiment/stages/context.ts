/**
 * What a stage implementation receives (its settings, resolved inputs, directory, base model,
 * device, judges, progress and log callbacks) and returns (its outputs and a short summary), and the
 * Effect program a stage is: it yields to the event loop between units of work (an optimizer step, a
 * sampled chunk, a judged row), keeps what it finished when interrupted, and fails with typed errors.
 * Stage implementations call library functions through the small adapters in this folder.
 */
import type { Effect } from "effect";
import type { JudgeSpec, Stage } from "../schema.js";

export interface StageContext<S extends Stage = Stage> {
  stage: S;
  /** The experiment file and the stage's path in it (`stages[3]`), for errors that name a field. */
  file: string;
  path: string;
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

/** A typed failure of a stage (its `_tag` says which). */
export interface StageFailure {
  readonly _tag: string;
  readonly message: string;
}

export type StageProgram = Effect.Effect<StageOutcome, StageFailure>;
