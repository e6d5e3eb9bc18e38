/**
 * The trajectory analyses of training runs as an Effect program (what `emlab gradients` writes as
 * trajectory.csv, pca.csv and pca_explained.csv): every checkpoint of every run is read by a scoped
 * constructor (freed when the Scope closes), then the per-checkpoint rows and one joint PCA are computed
 * (src/analysis/trajectories.ts, unchanged). Needs no model. Unreadable checkpoints, runs holding other
 * tensors than the first, or a filter matching nothing fail typed.
 */
import { Effect, type Scope } from "effect";
import {
  disposeTrajectory,
  jointPca,
  type RunTrajectory,
  readRunTrajectory,
  type TrajectoryRow,
  trajectoryRows,
} from "../analysis/trajectories.js";
import { tidy } from "../tensor/index.js";
import { type BoundaryError, boundary } from "./errors.js";

/** Every checkpoint of the run in `dir` (tensors whose names match `filter`) while the Scope is open. */
export function scopedRunTrajectory(
  dir: string,
  options: { label?: string; filter?: RegExp | null } = {},
): Effect.Effect<RunTrajectory, BoundaryError, Scope.Scope> {
  return Effect.acquireRelease(
    boundary(() => readRunTrajectory(dir, options)),
    (trajectory) => Effect.sync(() => disposeTrajectory(trajectory)),
  );
}

export interface TrajectoriesProgramOptions {
  /** emlab train run directories of any method (checkpoints/step-N/trainable.safetensors); labels default to the directories. */
  runs: readonly { dir: string; label?: string }[];
  /** Only trainable tensors whose names match. */
  filter?: RegExp | null;
  /** Principal components of the joint PCA (default 3). */
  components?: number;
}

export interface TrajectoriesResult {
  /** Each run's checkpoint steps, in the order of `runs`. */
  steps: number[][];
  /** Norms and local cosines per checkpoint, run after run. */
  rows: TrajectoryRow[];
  /** One PCA fitted on the checkpoints of all runs together. */
  pca: { explained: number[]; rows: { run: string; step: number; scores: number[] }[] };
}

/** Trajectory rows and the joint PCA of `runs`; the checkpoints read are freed when the Scope closes. */
export function trajectoriesProgram(options: TrajectoriesProgramOptions): Effect.Effect<TrajectoriesResult, BoundaryError, Scope.Scope> {
  return Effect.gen(function* () {
    const trajectories: RunTrajectory[] = [];
    for (const run of options.runs) {
      yield* Effect.yieldNow;
      trajectories.push(yield* scopedRunTrajectory(run.dir, { label: run.label ?? run.dir, filter: options.filter ?? null }));
    }
    // boundary (not step): jointPca refuses runs of other tensors with a RangeError (a typed InvalidSetupError here).
    const rows = yield* boundary(() => tidy(() => trajectories.flatMap(trajectoryRows)));
    const pca = yield* boundary(() => jointPca(trajectories, options.components ?? 3));
    return { steps: trajectories.map((t) => [...t.steps]), rows, pca };
  });
}
