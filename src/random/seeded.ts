/**
 * Seeded randomness for everything that is not a tensor (tensors use libtorch's generator,
 * manualSeed in src/tensor): the seed-to-state fold, a small PRNG (mulberry32) and a Fisher-Yates
 * permutation. Data splits, epoch orders, bootstrap resampling and generated fixtures all draw from
 * here, so one seed gives the same sequence everywhere. Python-compatible draws for the reference
 * study live in src/analysis/python-random.ts.
 */

/**
 * The 32-bit generator state of a seed. Seeds in [0, 2^32) map to themselves; larger or negative
 * safe integers fold their high word in through a multiplicative hash, so seeds that differ by a
 * multiple of 2^32 no longer collide. Anything but a safe integer is refused.
 */
export function seedState(seed: number): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  if (seed >= 0 && seed < 2 ** 32) return seed;
  const bits = BigInt.asUintN(64, BigInt(seed));
  const low = Number(bits & 0xffffffffn);
  const high = Number(bits >> 32n);
  let h = Math.imul(high ^ (high >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return (low ^ h ^ (h >>> 16) ^ 0x9e3779b9) >>> 0;
}

/** mulberry32: small, fast, seedable; enough for resampling. */
export function seededRandom(seed: number): () => number {
  let s = seedState(seed);
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded Fisher-Yates permutation of 0..n-1. */
export function permutation(n: number, seed: number): number[] {
  const random = seededRandom(seed);
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
