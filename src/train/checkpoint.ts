/**
 * Training checkpoints, written atomically (a private temporary directory `step-N.tmp-XXXXXX` renamed
 * into place, see io/output.ts; leftovers of killed runs are removed at the next start): trainable
 * tensors, optimizer state (tensors + JSON), the CPU RNG state, the trainer's position (step, epoch,
 * batch, KL cursor, early-stop streak) and a snapshot of the trainables' gradients for the gradient
 * analyses. Loading restores everything needed for a bit-identical continuation on CPU.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { removeStaleTemporaries, writeOutputDir } from "../io/output.js";
import { loadSafetensors, saveSafetensors } from "../io/safetensors.js";
import type { Optimizer, OptimizerState } from "../optim/optimizer.js";
import { getRngState, noGrad, setRngState, type Tensor, tidy } from "../tensor/index.js";
import { RunDirectoryError } from "./inputs.js";

export interface TrainerPosition {
  step: number;
  epoch: number;
  batchInEpoch: number;
  klCursor: number;
  lowLossStreak: number;
}

export function checkpointDir(outputDir: string, step: number): string {
  return join(outputDir, "checkpoints", `step-${String(step).padStart(6, "0")}`);
}

/** The newest complete checkpoint directory, or null. */
export function latestCheckpoint(outputDir: string): string | null {
  const root = join(outputDir, "checkpoints");
  if (!existsSync(root)) return null;
  const steps = readdirSync(root)
    .filter((d) => /^step-\d+$/.test(d))
    .sort();
  return steps.length === 0 ? null : join(root, steps[steps.length - 1]!);
}

/**
 * Removes what killed runs left in `outputDir` and its checkpoints/ (unfinished `step-N.tmp-*`
 * directories, private temporaries of file writers). Returns the removed paths.
 */
export function removeStaleCheckpointTemporaries(outputDir: string): string[] {
  const checkpoints = join(outputDir, "checkpoints");
  return [
    ...removeStaleTemporaries(outputDir).map((name) => join(outputDir, name)),
    ...removeStaleTemporaries(checkpoints).map((name) => join(checkpoints, name)),
  ];
}

/**
 * Writes the checkpoint of `position`. `rngState` replaces the current RNG state (a checkpoint of an
 * earlier point, e.g. the last good step before a non-finite one).
 */
export function saveCheckpoint(
  outputDir: string,
  position: TrainerPosition,
  trainables: ReadonlyMap<string, Tensor>,
  optimizer: Optimizer<unknown>,
  gradients: ReadonlyMap<string, Tensor>,
  options: { rngState?: Tensor } = {},
): string {
  const final = checkpointDir(outputDir, position.step);
  mkdirSync(join(outputDir, "checkpoints"), { recursive: true });
  writeOutputDir(final, (temporary) =>
    tidy(() => {
      saveSafetensors(join(temporary, "trainable.safetensors"), trainables);
      const state = optimizer.stateDict();
      saveSafetensors(join(temporary, "optimizer.safetensors"), state.tensors);
      for (const t of Object.values(state.tensors)) t.dispose();
      saveSafetensors(join(temporary, "rng.safetensors"), { cpu: options.rngState ?? getRngState() });
      if (gradients.size > 0) saveSafetensors(join(temporary, "gradients.safetensors"), gradients);
      writeFileSync(
        join(temporary, "state.json"),
        `${JSON.stringify({ position, optimizer: { kind: state.kind, groups: state.groups, steps: state.steps } }, null, 2)}\n`,
      );
    }),
  );
  return final;
}

/** Restores trainables (in place), optimizer and RNG from `dir`; returns the position to continue from. */
export function loadCheckpoint(dir: string, trainables: ReadonlyMap<string, Tensor>, optimizer: Optimizer<unknown>): TrainerPosition {
  const state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as {
    position: TrainerPosition;
    optimizer: Omit<OptimizerState, "tensors">;
  };
  const saved = loadSafetensors(join(dir, "trainable.safetensors")).tensors;
  const moments = loadSafetensors(join(dir, "optimizer.safetensors")).tensors;
  const rng = loadSafetensors(join(dir, "rng.safetensors")).tensors;
  try {
    const missing = [...trainables.keys()].find((name) => !saved.has(name));
    if (missing !== undefined) {
      const file = join(dir, "trainable.safetensors");
      throw new RunDirectoryError({ dir, file, message: `${file}: the checkpoint has no trainable ${missing}; it is not this run's` });
    }
    noGrad(() => {
      for (const [name, t] of trainables) t.copy_(saved.get(name)!);
    });
    optimizer.loadStateDict({ ...state.optimizer, tensors: Object.fromEntries(moments) });
    setRngState(rng.get("cpu")!);
  } finally {
    for (const t of [...saved.values(), ...moments.values(), ...rng.values()]) t.dispose();
  }
  return state.position;
}

/** The trainer position saved in checkpoint `dir` (without loading any tensor). */
export function readCheckpointPosition(dir: string): TrainerPosition {
  return (JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as { position: TrainerPosition }).position;
}
