/**
 * Python's `random.seed(int)` and `random.sample(range(n), k)` (CPython 3.x: MT19937 seeded through
 * init_by_array, _randbelow by getrandbits with rejection, sample's pool / set branches), so a subset
 * the study drew with `random.sample(rows, 100)` after `random.seed(42)` can be drawn identically.
 */
const N = 624;

class MersenneTwister {
  private readonly mt = new Uint32Array(N);
  private index = N + 1;

  constructor(seed: bigint) {
    // random.seed(int): the absolute value as little-endian 32-bit words.
    let a = seed < 0n ? -seed : seed;
    const key: number[] = [];
    while (a > 0n) {
      key.push(Number(a & 0xffffffffn));
      a >>= 32n;
    }
    if (key.length === 0) key.push(0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) mt[i] = (Math.imul(1812433253, mt[i - 1]! ^ (mt[i - 1]! >>> 30)) + i) >>> 0;
    this.index = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      mt[i] = ((mt[i]! ^ Math.imul(mt[i - 1]! ^ (mt[i - 1]! >>> 30), 1664525)) + key[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      mt[i] = ((mt[i]! ^ Math.imul(mt[i - 1]! ^ (mt[i - 1]! >>> 30), 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000;
  }

  uint32(): number {
    const mt = this.mt;
    if (this.index >= N) {
      for (let k = 0; k < N; k++) {
        const y = (mt[k]! & 0x80000000) | (mt[(k + 1) % N]! & 0x7fffffff);
        mt[k] = mt[(k + 397) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** getrandbits(k) for 0 < k <= 32. */
  bits(k: number): number {
    return this.uint32() >>> (32 - k);
  }

  /** _randbelow_with_getrandbits(n), n < 2^32. */
  below(n: number): number {
    const k = n.toString(2).length;
    let r = this.bits(k);
    while (r >= n) r = this.bits(k);
    return r;
  }
}

/** `random.seed(seed); random.sample(range(n), k)` as CPython computes it. */
export function pythonRandomSample(n: number, k: number, seed: number | bigint): number[] {
  if (!Number.isInteger(n) || !Number.isInteger(k) || k < 0 || k > n || n >= 2 ** 32)
    throw new RangeError(`sample of ${k} from ${n} is not possible`);
  const rng = new MersenneTwister(BigInt(seed));
  const result: number[] = [];
  let setsize = 21;
  if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
  if (n <= setsize) {
    const pool = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = rng.below(n - i);
      result.push(pool[j]!);
      pool[j] = pool[n - i - 1]!;
    }
    return result;
  }
  const selected = new Set<number>();
  for (let i = 0; i < k; i++) {
    let j = rng.below(n);
    while (selected.has(j)) j = rng.below(n);
    selected.add(j);
    result.push(j);
  }
  return result;
}
