/**
 * The budget of the property-based (fuzz) and fault tests: CI runs each with its base number of runs;
 * EMLAB_FUZZ_SCALE=N multiplies them (e.g. `EMLAB_FUZZ_SCALE=20 npm run fuzz`), EMLAB_FUZZ_SEED fixes
 * fast-check's seed to replay a reported failure.
 */
const scale = Number(process.env.EMLAB_FUZZ_SCALE ?? "1");
if (!Number.isFinite(scale) || scale <= 0)
  throw new RangeError(`EMLAB_FUZZ_SCALE must be a positive number, got ${process.env.EMLAB_FUZZ_SCALE}`);

/** `base` runs scaled by EMLAB_FUZZ_SCALE (at least 1). */
export function fuzzRuns(base: number): number {
  return Math.max(1, Math.round(base * scale));
}

/** fast-check parameters: scaled runs, the seed from EMLAB_FUZZ_SEED when set. */
export function fuzzParameters(base: number): { numRuns: number; seed?: number } {
  const seed = process.env.EMLAB_FUZZ_SEED;
  return { numRuns: fuzzRuns(base), ...(seed === undefined ? {} : { seed: Number(seed) }) };
}

/** Extra time a scaled-up test may take (vitest timeouts), in ms. */
export function fuzzTimeout(baseMs: number): number {
  return Math.round(baseMs * Math.max(1, scale));
}
