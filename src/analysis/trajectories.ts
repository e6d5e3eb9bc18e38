/**
 * Training trajectories from run directories, for every method (LoRA A/B, steering vectors, selected
 * full-SFT weights): each checkpoint's trainable tensors and the accumulated gradient saved with it
 * (before clipping), optionally filtered by name. Per checkpoint: parameter norm, update norm and the
 * local cosine similarity of consecutive updates, gradient norm and the cosine of consecutive
 * gradients. PCA can be fitted on several runs at once (e.g. general and narrow in one space).
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadSafetensors } from "../io/safetensors.js";
import { cat, keep, type Tensor, tidy } from "../tensor/index.js";
import { pca } from "./gradients.js";

export interface RunTrajectory {
  /** Label of the run in outputs (default: its directory). */
  label: string;
  steps: number[];
  /** Names of the tensors concatenated (sorted), identical for every checkpoint. */
  names: string[];
  /** Flattened trainables per checkpoint, float32. */
  points: Tensor[];
  /** Flattened saved gradients per checkpoint (same names), or null where a checkpoint has none. */
  gradients: (Tensor | null)[];
}

const stepDirs = (runDir: string): string[] => {
  const root = join(runDir, "checkpoints");
  if (!existsSync(root)) throw new RangeError(`${runDir}: no checkpoints/ directory (is it an emlab train run?)`);
  const dirs = readdirSync(root)
    .filter((d) => /^step-\d+$/.test(d))
    .sort();
  if (dirs.length === 0) throw new RangeError(`${root}: no checkpoints`);
  return dirs.map((d) => join(root, d));
};

function flatten(file: string, names: readonly string[] | null, filter: RegExp | null): { names: string[]; flat: Tensor } {
  const { tensors } = loadSafetensors(file);
  try {
    const chosen: string[] = names ? [...names] : [...tensors.keys()].filter((n) => !filter || filter.test(n)).sort();
    if (chosen.length === 0) throw new RangeError(`${file}: no tensor${filter ? ` matches ${filter.source}` : ""}`);
    for (const n of chosen)
      if (!tensors.has(n)) throw new RangeError(`${file}: no tensor ${n} (checkpoints of one trajectory must hold the same tensors)`);
    return {
      names: chosen,
      flat: keep(
        tidy(() =>
          cat(
            chosen.map((n) => tensors.get(n)!.to("f32").flatten()),
            0,
          ),
        ),
      ),
    };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** The checkpoint steps of a run directory, in order (a RangeError naming the run when it has none). */
export function checkpointSteps(runDir: string): number[] {
  return stepDirs(runDir).map((dir) => Number(/step-(\d+)$/.exec(dir)![1]));
}

/** Reads every checkpoint of a run: trainables and (when saved) gradients, restricted to names matching `filter`. */
export function readRunTrajectory(runDir: string, options: { label?: string; filter?: RegExp | null } = {}): RunTrajectory {
  const dirs = stepDirs(runDir);
  const trajectory: RunTrajectory = { label: options.label ?? runDir, steps: [], names: [], points: [], gradients: [] };
  try {
    for (const dir of dirs) {
      const { names, flat } = flatten(
        join(dir, "trainable.safetensors"),
        trajectory.names.length > 0 ? trajectory.names : null,
        options.filter ?? null,
      );
      trajectory.names = names;
      trajectory.points.push(flat);
      trajectory.steps.push(Number(/step-(\d+)$/.exec(dir)![1]));
      const gradFile = join(dir, "gradients.safetensors");
      trajectory.gradients.push(existsSync(gradFile) ? flatten(gradFile, names, null).flat : null);
    }
  } catch (error) {
    disposeTrajectory(trajectory);
    throw error;
  }
  return trajectory;
}

export function disposeTrajectory(t: RunTrajectory): void {
  for (const p of t.points) p.dispose();
  for (const g of t.gradients) g?.dispose();
}

/** One row of trajectory.csv; null where undefined (first checkpoint, no gradient saved, zero vectors). */
export interface TrajectoryRow {
  run: string;
  step: number;
  /** ||theta_k|| */
  param_norm: number;
  /** ||theta_k - theta_{k-1}|| (null at the first checkpoint) */
  update_norm: number | null;
  /** cos(theta_k - theta_{k-1}, theta_{k-1} - theta_{k-2}): local cosine similarity of consecutive updates */
  update_cosine_prev: number | null;
  /** ||g_k||, the accumulated gradient of step k before clipping */
  grad_norm: number | null;
  /** cos(g_k, g_{k-1}) between consecutive checkpoints' gradients */
  grad_cosine_prev: number | null;
}

function cosineOrNull(a: Tensor, b: Tensor): number | null {
  return tidy(() => {
    const x = a.to("f64");
    const y = b.to("f64");
    const denominator = x.norm().mul(y.norm()).toNumber();
    return denominator === 0 ? null : x.mul(y).sum().toNumber() / denominator;
  });
}

export function trajectoryRows(t: RunTrajectory): TrajectoryRow[] {
  return tidy(() => {
    const updates = t.points.map((p, k) => (k === 0 ? null : p.to("f64").sub(t.points[k - 1]!.to("f64"))));
    return t.steps.map((step, k) => {
      const g = t.gradients[k];
      const previousGradient = k > 0 ? t.gradients[k - 1] : null;
      const u = updates[k];
      const previousUpdate = k > 1 ? updates[k - 1] : null;
      return {
        run: t.label,
        step,
        param_norm: t.points[k]!.to("f64").norm().toNumber(),
        update_norm: u ? u.norm().toNumber() : null,
        update_cosine_prev: u && previousUpdate ? cosineOrNull(u, previousUpdate) : null,
        grad_norm: g ? g.to("f64").norm().toNumber() : null,
        grad_cosine_prev: g && previousGradient ? cosineOrNull(g, previousGradient) : null,
      };
    });
  });
}

/**
 * PCA fitted on the checkpoints of all `runs` together (one common centre and basis), so runs can be
 * compared in one space. The runs must hold the same tensors. Returns each checkpoint's scores and the
 * components' explained-variance ratios (of the pooled variance).
 */
export function jointPca(
  runs: readonly RunTrajectory[],
  components = 3,
): { explained: number[]; rows: { run: string; step: number; scores: number[] }[] } {
  if (runs.length === 0) throw new RangeError("jointPca: no runs");
  const names = runs[0]!.names.join("\n");
  for (const r of runs) {
    if (r.names.join("\n") !== names)
      throw new RangeError(
        `${r.label}: holds other tensors than ${runs[0]!.label}; PCA needs runs of the same method and shapes (use a filter)`,
      );
  }
  return tidy(() => {
    const points = cat(
      runs.flatMap((r) => r.points.map((p) => p.unsqueeze(0))),
      0,
    );
    const { projections, explained } = pca(points, components);
    const rows: { run: string; step: number; scores: number[] }[] = [];
    let i = 0;
    for (const r of runs) {
      for (const step of r.steps) {
        rows.push({ run: r.label, step, scores: projections.map((p) => p[i]!) });
        i++;
      }
    }
    return { explained, rows };
  });
}
