/**
 * Statistics for evaluation: percentile bootstrap confidence intervals for rates, Pearson and
 * Spearman correlation, Cohen's kappa. The seeded PRNG lives in src/random/seeded.ts (re-exported).
 */
import { seededRandom } from "../random/seeded.js";

export { seededRandom, seedState } from "../random/seeded.js";

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower);
}

/** Percentile bootstrap CI of the mean of 0/1 `labels` (as a percentage), resampling rows. */
export function bootstrapRateCi(
  labels: readonly boolean[],
  options: { resamples?: number; seed?: number; level?: number } = {},
): [number, number] {
  const n = labels.length;
  if (n === 0) return [Number.NaN, Number.NaN];
  const resamples = options.resamples ?? 1000;
  const random = seededRandom(options.seed ?? 0);
  const rates: number[] = [];
  for (let b = 0; b < resamples; b++) {
    let hits = 0;
    for (let i = 0; i < n; i++) if (labels[Math.floor(random() * n)]) hits++;
    rates.push((100 * hits) / n);
  }
  rates.sort((a, b) => a - b);
  const alpha = (1 - (options.level ?? 0.95)) / 2;
  return [percentile(rates, alpha), percentile(rates, 1 - alpha)];
}

export function pearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  if (n !== y.length || n < 2) return Number.NaN;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
    syy += (y[i]! - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** Ranks with ties given their average rank (1-based). */
export function ranks(values: readonly number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) out[order[k]![1]] = rank;
    i = j + 1;
  }
  return out;
}

export function spearman(x: readonly number[], y: readonly number[]): number {
  return pearson(ranks(x), ranks(y));
}

/** Cohen's kappa of two boolean labelings of the same items. */
export function cohenKappa(a: readonly boolean[], b: readonly boolean[]): number {
  const n = a.length;
  if (n !== b.length || n === 0) return Number.NaN;
  let agree = 0;
  let aTrue = 0;
  let bTrue = 0;
  for (let i = 0; i < n; i++) {
    if (a[i] === b[i]) agree++;
    if (a[i]) aTrue++;
    if (b[i]) bTrue++;
  }
  const observed = agree / n;
  const expected = (aTrue / n) * (bTrue / n) + (1 - aTrue / n) * (1 - bTrue / n);
  return expected === 1 ? (observed === 1 ? 1 : Number.NaN) : (observed - expected) / (1 - expected);
}
