// The budget of property-based (fast-check) and fault tests: `fuzzRuns(n)` is n runs in the normal suite
// (CI), scaled by EMLAB_FUZZ_SCALE (e.g. `npm run fuzz` sets 20); EMLAB_FUZZ_SEED replays a failure.
import fc from "fast-check";

const scale = (() => {
  const value = Number(process.env.EMLAB_FUZZ_SCALE ?? "1");
  return Number.isFinite(value) && value > 0 ? value : 1;
})();

/** Runs (or trials) for a property: `base` times the scale, at least 1. */
export function fuzzRuns(base: number): number {
  return Math.max(1, Math.round(base * scale));
}

/** fast-check parameters: the scaled number of runs and, when EMLAB_FUZZ_SEED is set, that seed. */
export function fuzzParameters<T>(base: number): fc.Parameters<T> {
  const seed = process.env.EMLAB_FUZZ_SEED;
  return { numRuns: fuzzRuns(base), ...(seed !== undefined && seed !== "" ? { seed: Number(seed) } : {}) };
}
