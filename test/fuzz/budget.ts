// The fuzz suite's budget: CI runs each fuzz test at scale 1 (a fixed, small number of cases); `npm run fuzz`
// sets EMLAB_FUZZ_SCALE (10 by default there) to run that many times more. Seeds are fixed per case index, so a
// failure names the case that reproduces it.
export const FUZZ_SCALE = Math.max(1, Math.floor(Number(process.env.EMLAB_FUZZ_SCALE ?? 1)) || 1);

/** `base` cases at scale 1, multiplied by the scale. */
export const fuzzRuns = (base: number): number => base * FUZZ_SCALE;

/** The seed fast-check starts from (EMLAB_FUZZ_SEED to explore others; fixed by default for reproducible CI). */
export const FUZZ_SEED = Number(process.env.EMLAB_FUZZ_SEED ?? 20261130);
