/**
 * The benchmark-only addon (native/bench/, emlab_bench.node): C++ baselines the ops benchmark
 * compares emlab's per-call cost against. It is not part of the production addon; build it with
 * `npm run build:native:bench`. Loaded on first use, so nothing else ever needs it.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { addonCandidates } from "./addon.js";

export interface BenchAddon {
  /** Microseconds per at::add of two 4-element f32 tensors in a C++ loop (no JS per call). */
  benchTinyAdd(iterations: number, requiresGrad: boolean): number;
}

let loaded: BenchAddon | null = null;

/** The benchmark addon; throws with the build command when it is not built. */
export function benchAddon(): BenchAddon {
  if (loaded !== null) return loaded;
  // With $EMLAB_NATIVE (e.g. a libtorch 2.x build) only the one beside it: one libtorch per process.
  const candidates = process.env.EMLAB_NATIVE
    ? [join(dirname(resolve(process.env.EMLAB_NATIVE)), "emlab_bench.node")]
    : addonCandidates("emlab_bench.node");
  const path = candidates.find((p) => existsSync(p));
  if (!path)
    throw new Error(
      `emlab: the benchmark addon is not built (looked for ${candidates.join(", ")}). Run \`npm run build:native:bench\` (another build directory: cmake-js configure --out DIR --CDEMLAB_BENCH=ON, then cmake-js build --out DIR).`,
    );
  loaded = createRequire(import.meta.url)(path) as BenchAddon;
  return loaded;
}
