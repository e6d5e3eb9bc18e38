// sampleCategorical (native/src/decode.cc: one uniform per row, inverse transform over exp(score - max))
// against probabilities computed here in float64 JS: chi-square goodness of fit on small vocabularies
// (several rows with their own distributions, a 3-D batch, -inf entries never drawn), the 50 % mass of
// the last entry of a 151936-entry vocabulary, seeded repeatability, and refusals of NaN / all -inf rows.
import { describe, expect, it } from "vitest";
import { sampleCategorical } from "../../src/generate/categorical.js";
import { chooseNext } from "../../src/generate/sampling.js";
import { manualSeed, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { values } from "../helpers/numeric.js";

useLeakCheck();

/** softmax in float64 (-inf -> 0). */
function probabilities(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/** Pearson's chi-square of observed draws against probabilities p (categories with p = 0 must stay empty). */
function chiSquare(draws: readonly number[], p: readonly number[]): { statistic: number; dof: number; impossible: number } {
  const counts = new Array<number>(p.length).fill(0);
  for (const d of draws) counts[d]!++;
  let statistic = 0;
  let dof = -1;
  let impossible = 0;
  p.forEach((pi, i) => {
    if (pi === 0) impossible += counts[i]!;
    else {
      const expected = pi * draws.length;
      statistic += (counts[i]! - expected) ** 2 / expected;
      dof++;
    }
  });
  return { statistic, dof, impossible };
}

// Upper 1e-6 quantiles of chi-square (dof 2..5): a correct sampler exceeds them with probability 1e-6
// (and the draws are seeded, so the test is deterministic); a shifted or wrongly normalised one by far.
const critical: Record<number, number> = { 2: 27.6, 3: 30.7, 4: 33.4, 5: 35.9 };

describe("sampleCategorical draws from softmax(scores)", () => {
  it("matches the float64 softmax of each row (chi-square, 30000 draws per distribution)", () =>
    tidy(() => {
      const first = [Math.log(0.05), Math.log(0.15), Math.log(0.3), -Infinity, Math.log(0.4), Math.log(0.1)].map((l) => l + 7);
      const second = [2.5, -1, 0.25, 1, -Infinity, -3];
      const draws = 30000;
      const flat: number[] = [];
      for (let r = 0; r < draws; r++) flat.push(...first, ...second);
      manualSeed(11);
      // [draws, 2, 6]: rows alternate between the two distributions.
      const chosen = values(sampleCategorical(tensor(Float32Array.from(flat), { shape: [draws, 2, 6] })));
      expect(chosen.length).toBe(2 * draws);
      for (const [which, logits] of [first, second].entries()) {
        const fit = chiSquare(
          chosen.filter((_, i) => i % 2 === which),
          probabilities(logits),
        );
        expect(fit.impossible, `distribution ${which}: draws of a -inf entry`).toBe(0);
        expect(fit.statistic, `distribution ${which}: chi-square with ${fit.dof} dof`).toBeLessThan(critical[fit.dof]!);
      }
    }));

  it("draws the last entry of a 151936-entry vocabulary with probability 1/2 (exact accumulation over the whole row)", () =>
    tidy(() => {
      const vocab = 151936;
      const rows = 128;
      const row = new Float32Array(vocab);
      row[vocab - 1] = Math.log(vocab - 1); // e^l = the sum of all others' e^0: probability exactly 1/2
      const flat = new Float32Array(rows * vocab);
      for (let r = 0; r < rows; r++) flat.set(row, r * vocab);
      manualSeed(3);
      const chosen = values(sampleCategorical(tensor(flat, { shape: [rows, vocab] })));
      const last = chosen.filter((c) => c === vocab - 1).length;
      // Binomial(128, 1/2): mean 64, sd 5.66; 5 sd either side.
      expect(Math.abs(last - rows / 2)).toBeLessThan(29);
      expect(chosen.every((c) => Number.isInteger(c) && c >= 0 && c < vocab)).toBe(true);
      expect(new Set(chosen.filter((c) => c !== vocab - 1)).size).toBeGreaterThan(30); // the rest spread over the others
    }));

  it("is repeatable under manualSeed and differs between seeds", () =>
    tidy(() => {
      const scores = tensor(
        Float32Array.from({ length: 64 * 50 }, (_, i) => Math.sin(i) * 2),
        { shape: [64, 50] },
      );
      const draw = (seed: number) => {
        manualSeed(seed);
        return values(sampleCategorical(scores));
      };
      expect(draw(5)).toEqual(draw(5));
      expect(draw(5)).not.toEqual(draw(6));
    }));

  it("a single 1-D row gives a 0-D id; float64 scores are accepted", () =>
    tidy(() => {
      manualSeed(1);
      const one = sampleCategorical(tensor([-Infinity, 0, -Infinity]));
      expect(one.shape).toEqual([]);
      expect(values(one)).toEqual([1]);
      expect(values(sampleCategorical(tensor(Float64Array.from([-Infinity, -Infinity, 3]), { shape: [1, 3] })))).toEqual([2]);
    }));

  it("refuses a row of NaN or +inf, and a row with no finite score", () =>
    tidy(() => {
      expect(() => sampleCategorical(tensor([0, Number.NaN, 1], { shape: [1, 3] }))).toThrow(/NaN or \+inf/);
      expect(() => sampleCategorical(tensor([0, Infinity, 1], { shape: [1, 3] }))).toThrow(/NaN or \+inf/);
      expect(() => sampleCategorical(tensor([0, 1, 2, -Infinity, -Infinity, -Infinity], { shape: [2, 3] }))).toThrow(/row 1 is -inf/);
    }));
});

describe("chooseNext with a vanishing temperature", () => {
  it("returns the argmax instead of refusing the overflowed scores (T = 5e-324, the serve fuzzer's counterexample)", () => {
    tidy(() => {
      const logits = tensor([
        [0.5, 3.25, -1, 2],
        [7, -2, 6.5, 0],
      ]);
      // The limit of softmax(l / T) as T -> 0 puts all mass on the largest logit: rows -> 1 and 0.
      for (const temperature of [5e-324, 1e-300, 1e-40, 1e-6]) expect(values(chooseNext(logits, { temperature }))).toEqual([1, 0]);
    });
  });
});
