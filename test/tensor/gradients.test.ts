// Backward of every differentiable op the tensor API exposes, checked against central finite
// differences in float64 (gradcheck), plus a few closed-form gradients (cross-entropy with an
// ignored target, kl_div batchmean, dropout scaling) and a JS reference for attention heads/masks.
import { describe, expect, it } from "vitest";
import {
  type AttentionOptions,
  cat,
  crossEntropy,
  type Device,
  dropout,
  einsum,
  embedding,
  klDiv,
  layerNorm,
  linear,
  logSoftmax,
  mseLoss,
  scaledDotProductAttention,
  softmax,
  stack,
  type Tensor,
  tensor,
  tidy,
  where,
} from "../../src/tensor/index.js";
import { forEachDevice } from "../helpers/devices.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { expectClose, type GradInput, gradcheck, seededValues, values } from "../helpers/numeric.js";

const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Uniform values in [low, high). */
const rnd = (shape: number[], seed: number, low = -1, high = 1): GradInput => ({
  shape,
  data: seededValues(count(shape), seed, low, high),
});

/** Values in (-1.3, -0.3] ∪ [0.3, 1.3): at least `gap` away from 0 (kinks of abs/relu, poles). */
const awayFromZero = (shape: number[], seed: number, gap = 0.3): GradInput => ({
  shape,
  data: seededValues(count(shape), seed).map((v) => (v >= 0 ? v + gap : v - gap)),
});

/** A pair of inputs whose elements differ by 0.4 everywhere (no ties for maximum/minimum). */
function distinctPair(shape: number[], seed: number): [GradInput, GradInput] {
  const a = seededValues(count(shape), seed);
  const b = a.map((v, i) => v + (i % 2 === 0 ? 0.4 : -0.4));
  return [
    { shape, data: a },
    { shape, data: b },
  ];
}

/** Row-major float64 JS reference of softmax(q k^T * scale + mask) v with grouped kv heads. */
function referenceAttention(
  q: number[],
  k: number[],
  v: number[],
  dims: { batch: number; heads: number; kvHeads: number; qLen: number; kLen: number; d: number },
  scale: number,
  allowed: (i: number, j: number) => boolean,
  additive: (i: number, j: number) => number = () => 0,
): number[] {
  const { batch, heads, kvHeads, qLen, kLen, d } = dims;
  const out: number[] = [];
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / (heads / kvHeads)); // repeat_interleave grouping: consecutive query heads share a kv head
      for (let i = 0; i < qLen; i++) {
        const scores: number[] = [];
        for (let j = 0; j < kLen; j++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += q[((b * heads + h) * qLen + i) * d + c]! * k[((b * kvHeads + kh) * kLen + j) * d + c]!;
          scores.push(allowed(i, j) ? s * scale + additive(i, j) : -Infinity);
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((x, y) => x + y, 0);
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j < kLen; j++) acc += (e[j]! / z) * v[((b * kvHeads + kh) * kLen + j) * d + c]!;
          out.push(acc);
        }
      }
    }
  }
  return out;
}

forEachDevice("gradients", (device: Device) => {
  useLeakCheck();
  const check = (f: (...xs: Tensor[]) => Tensor, inputs: GradInput[], extra: { seed?: number; tolerance?: number } = {}) =>
    gradcheck(f, inputs, { device, ...extra });
  const i64 = (data: number[], shape?: number[]) => tensor(data, { dtype: "i64", device, ...(shape ? { shape } : {}) });
  const bool = (data: boolean[], shape: number[]) => tensor(data, { dtype: "bool", device, shape });
  const f64 = (data: number[], shape: number[]) => tensor(Float64Array.from(data), { shape, device });

  describe("unary", () => {
    const cases: [string, (x: Tensor) => Tensor, GradInput][] = [
      ["neg", (x) => x.neg(), rnd([2, 3], 1)],
      ["exp", (x) => x.exp(), rnd([2, 3], 2)],
      ["log (positive)", (x) => x.log(), rnd([2, 3], 3, 0.3, 2)],
      ["sqrt", (x) => x.sqrt(), rnd([2, 3], 4, 0.3, 2)],
      ["rsqrt", (x) => x.rsqrt(), rnd([2, 3], 5, 0.3, 2)],
      ["abs (away from 0)", (x) => x.abs(), awayFromZero([2, 3], 6)],
      ["tanh", (x) => x.tanh(), rnd([2, 3], 7, -2, 2)],
      ["sigmoid", (x) => x.sigmoid(), rnd([2, 3], 8, -3, 3)],
      ["silu", (x) => x.silu(), rnd([2, 3], 9, -3, 3)],
      ["relu (away from 0)", (x) => x.relu(), awayFromZero([2, 3], 10)],
      ["gelu (erf)", (x) => x.gelu(), rnd([2, 3], 11, -3, 3)],
      ["gelu (tanh)", (x) => x.gelu("tanh"), rnd([2, 3], 12, -3, 3)],
      ["sin", (x) => x.sin(), rnd([2, 3], 13, -3, 3)],
      ["cos", (x) => x.cos(), rnd([2, 3], 14, -3, 3)],
      ["square", (x) => x.square(), rnd([2, 3], 15, -2, 2)],
      ["erf", (x) => x.erf(), rnd([2, 3], 16, -2, 2)],
      ["log1p", (x) => x.log1p(), rnd([2, 3], 17, -0.6, 2)],
      ["expm1", (x) => x.expm1(), rnd([2, 3], 18, -2, 2)],
      ["reciprocal (away from 0)", (x) => x.reciprocal(), awayFromZero([2, 3], 19)],
      ["pow with a scalar integer exponent", (x) => x.pow(3), rnd([2, 3], 20, -2, 2)],
      ["pow with a scalar fractional exponent", (x) => x.pow(2.5), rnd([2, 3], 21, 0.3, 2)],
      ["pow with a negative scalar exponent", (x) => x.pow(-1.5), rnd([2, 3], 22, 0.3, 2)],
      ["clamp(min, max) away from the bounds", (x) => x.clamp(-0.45, 0.5), { shape: [2, 3], data: [-0.9, -0.2, 0.1, 0.3, 0.8, -0.6] }],
      ["clamp(min only)", (x) => x.clamp(0.1), { shape: [2, 3], data: [-0.9, -0.2, 0.3, 0.45, 0.8, -0.6] }],
      ["clamp(max only)", (x) => x.clamp(null, 0.2), { shape: [2, 3], data: [-0.9, -0.2, 0.3, 0.45, 0.8, -0.6] }],
      ["add scalar", (x) => x.add(2.5), rnd([2, 3], 23)],
      ["add scalar with alpha", (x) => x.add(1.5, -2), rnd([2, 3], 24)],
      ["sub scalar", (x) => x.sub(0.7), rnd([2, 3], 25)],
      ["rsub scalar (2 - x)", (x) => x.rsub(2), rnd([2, 3], 26)],
      ["mul scalar", (x) => x.mul(-3.5), rnd([2, 3], 27)],
      ["div scalar", (x) => x.div(1.7), rnd([2, 3], 28)],
      ["rdiv scalar (3 / x)", (x) => x.rdiv(3), awayFromZero([2, 3], 29)],
      ["maximum with a scalar", (x) => x.maximum(0.05), awayFromZero([2, 3], 30)],
      ["minimum with a scalar", (x) => x.minimum(0.05), awayFromZero([2, 3], 31)],
    ];
    for (const [name, f, input] of cases) it(name, () => check(f, [input]));
  });

  describe("binary", () => {
    it("add", () => check((a, b) => a.add(b), [rnd([2, 3], 40), rnd([2, 3], 41)]));
    it("add with alpha", () => check((a, b) => a.add(b, 2.5), [rnd([2, 3], 42), rnd([2, 3], 43)]));
    it("add with a negative fractional alpha", () => check((a, b) => a.add(b, -0.75), [rnd([2, 3], 44), rnd([2, 3], 45)]));
    it("sub", () => check((a, b) => a.sub(b), [rnd([2, 3], 46), rnd([2, 3], 47)]));
    it("rsub (b - a)", () => check((a, b) => a.rsub(b), [rnd([2, 3], 48), rnd([2, 3], 49)]));
    it("mul", () => check((a, b) => a.mul(b), [rnd([2, 3], 50), rnd([2, 3], 51)]));
    it("div", () => check((a, b) => a.div(b), [rnd([2, 3], 52), awayFromZero([2, 3], 53)]));
    it("rdiv (b / a)", () => check((a, b) => a.rdiv(b), [awayFromZero([2, 3], 54), rnd([2, 3], 55)]));
    it("pow with a tensor exponent", () => check((a, b) => a.pow(b), [rnd([2, 3], 56, 0.3, 2), rnd([2, 3], 57, -1.5, 2)]));
    it("maximum (distinct values)", () => check((a, b) => a.maximum(b), distinctPair([2, 3], 58)));
    it("minimum (distinct values)", () => check((a, b) => a.minimum(b), distinctPair([2, 3], 59)));
    it("lerp", () => check((a, b) => a.lerp(b, 0.3), [rnd([2, 3], 60), rnd([2, 3], 61)]));
    it("lerp with weight above 0.5", () => check((a, b) => a.lerp(b, 0.8), [rnd([2, 3], 62), rnd([2, 3], 63)]));
  });

  describe("broadcasting binary ops", () => {
    it("add [2,3] + [3]", () => check((a, b) => a.add(b), [rnd([2, 3], 70), rnd([3], 71)]));
    it("add with alpha [2,1] + [1,3]", () => check((a, b) => a.add(b, -1.5), [rnd([2, 1], 72), rnd([1, 3], 73)]));
    it("sub [3] - [2,3]", () => check((a, b) => a.sub(b), [rnd([3], 74), rnd([2, 3], 75)]));
    it("mul [2,1,3] * [2,1]", () => check((a, b) => a.mul(b), [rnd([2, 1, 3], 76), rnd([2, 1], 77)]));
    it("div [2,3] / [2,1]", () => check((a, b) => a.div(b), [rnd([2, 3], 78), awayFromZero([2, 1], 79)]));
    it("pow [2,3] ** [3]", () => check((a, b) => a.pow(b), [rnd([2, 3], 80, 0.3, 2), rnd([3], 81, -1, 2)]));
    it("maximum [2,3] vs [3]", () =>
      check(
        (a, b) => a.maximum(b),
        [
          { shape: [2, 3], data: [0.9, -0.5, 0.2, -0.8, 0.6, -0.1] },
          { shape: [3], data: [0.1, 0.3, -0.4] },
        ],
      ));
    it("minimum [2,1] vs [1,3]", () =>
      check(
        (a, b) => a.minimum(b),
        [
          { shape: [2, 1], data: [0.15, -0.35] },
          { shape: [1, 3], data: [0.8, -0.9, 0.0] },
        ],
      ));
    it("rsub and rdiv broadcast", () => check((a, b) => a.rsub(b).add(a.rdiv(b)), [awayFromZero([3], 82), rnd([2, 3], 83)]));
  });

  describe("selection", () => {
    it("where (both branches are inputs)", () =>
      check((a, b) => where(bool([true, false, false, true, true, false], [2, 3]), a, b), [rnd([2, 3], 90), rnd([2, 3], 91)]));
    it("where with a broadcast condition and a scalar branch", () =>
      check((a) => where(bool([true, false, true], [3]), a, 0.5), [rnd([2, 3], 92)]));
    it("maskedFill with a scalar", () =>
      check((x) => x.maskedFill(bool([false, true, false, true, false, false], [2, 3]), -7), [rnd([2, 3], 93)]));
    it("maskedFill with a broadcast mask", () => check((x) => x.maskedFill(bool([true, false], [2, 1]), 0), [rnd([2, 3], 94)]));
  });

  describe("reductions", () => {
    const x3 = () => rnd([2, 3, 2], 100);
    it("sum (all)", () => check((x) => x.sum(), [x3()]));
    it("sum dim 1", () => check((x) => x.sum(1), [x3()]));
    it("sum dims [0, 2] keepdim", () => check((x) => x.sum([0, 2], true), [x3()]));
    it("mean (all)", () => check((x) => x.mean(), [x3()]));
    it("mean dim -1", () => check((x) => x.mean(-1), [x3()]));
    it("mean dims [0, 1] keepdim", () => check((x) => x.mean([0, 1], true), [x3()]));
    it("max (all)", () => check((x) => x.max(), [x3()]));
    it("max dim 1", () => check((x) => x.max(1), [x3()]));
    it("max dim 2 keepdim", () => check((x) => x.max(2, true), [x3()]));
    it("min (all)", () => check((x) => x.min(), [x3()]));
    it("min dim 0", () => check((x) => x.min(0), [x3()]));
    it("min dims [1, 2] keepdim", () => check((x) => x.min([1, 2], true), [x3()]));
    it("maxWithIndices values", () => check((x) => x.maxWithIndices(1).values, [x3()]));
    it("minWithIndices values keepdim", () => check((x) => x.minWithIndices(2, true).values, [x3()]));
    it("norm p=2 (all)", () => check((x) => x.norm(), [x3()]));
    it("norm p=2 dim 1", () => check((x) => x.norm(2, 1), [x3()]));
    it("norm p=2 dim 2 keepdim", () => check((x) => x.norm(2, 2, true), [x3()]));
    it("norm p=1 (all)", () => check((x) => x.norm(1), [awayFromZero([2, 3, 2], 101)]));
    it("norm p=1 dim 0 keepdim", () => check((x) => x.norm(1, 0, true), [awayFromZero([2, 3, 2], 102)]));
    it("norm p=Infinity (all)", () => check((x) => x.norm(Infinity), [x3()]));
    it("norm p=Infinity dim 1", () => check((x) => x.norm(Infinity, 1), [x3()]));
    it("norm p=Infinity dims [1, 2] keepdim", () => check((x) => x.norm(Infinity, [1, 2], true), [x3()]));
    it("var (all, unbiased)", () => check((x) => x.var(), [x3()]));
    it("var dim 1 biased", () => check((x) => x.var(1, { unbiased: false }), [x3()]));
    it("var dims [0, 2] keepdim", () => check((x) => x.var([0, 2], { keepdim: true }), [x3()]));
    it("std (all, unbiased)", () => check((x) => x.std(), [x3()]));
    it("std dim 1 keepdim", () => check((x) => x.std(1, { keepdim: true }), [x3()]));
    it("std dim -1 biased", () => check((x) => x.std(-1, { unbiased: false }), [x3()]));
    it("logsumexp dim 1", () => check((x) => x.logsumexp(1), [x3()]));
    it("logsumexp dims [0, 2] keepdim", () => check((x) => x.logsumexp([0, 2], true), [x3()]));
    it("prod (all)", () => check((x) => x.prod(), [awayFromZero([2, 3], 103)]));
    it("prod dim 1", () => check((x) => x.prod(1), [awayFromZero([2, 3, 2], 104)]));
    it("prod dim 0 keepdim", () => check((x) => x.prod(0, true), [awayFromZero([2, 3, 2], 105)]));
    it("cumsum dim 0", () => check((x) => x.cumsum(0), [x3()]));
    it("cumsum dim -1", () => check((x) => x.cumsum(-1), [rnd([2, 4], 106)]));
  });

  describe("linear algebra", () => {
    it("matmul [2,3] @ [3,2]", () => check((a, b) => a.matmul(b), [rnd([2, 3], 110), rnd([3, 2], 111)]));
    it("matmul batched with broadcast [2,2,3] @ [3,2]", () => check((a, b) => a.matmul(b), [rnd([2, 2, 3], 112), rnd([3, 2], 113)]));
    it("matmul vector @ matrix", () => check((a, b) => a.matmul(b), [rnd([3], 114), rnd([3, 2], 115)]));
    it("bmm", () => check((a, b) => a.bmm(b), [rnd([2, 2, 3], 116), rnd([2, 3, 2], 117)]));
    it("outer", () => check((a, b) => a.outer(b), [rnd([3], 118), rnd([2], 119)]));
    it("linear with bias", () => check((x, w, b) => linear(x, w, b), [rnd([2, 3], 120), rnd([4, 3], 121), rnd([4], 122)]));
    it("linear without bias", () => check((x, w) => linear(x, w), [rnd([2, 3], 123), rnd([4, 3], 124)]));
    it("linear on a 3-d input", () => check((x, w, b) => linear(x, w, b), [rnd([2, 2, 3], 125), rnd([2, 3], 126), rnd([2], 127)]));
    it("einsum ij,jk->ik", () => check((a, b) => einsum("ij,jk->ik", a, b), [rnd([2, 3], 128), rnd([3, 2], 129)]));
    it("einsum bij,bkj->bik", () => check((a, b) => einsum("bij,bkj->bik", a, b), [rnd([2, 2, 3], 130), rnd([2, 2, 3], 131)]));
    it("einsum i,i-> (dot)", () => check((a, b) => einsum("i,i->", a, b), [rnd([4], 132), rnd([4], 133)]));
    it("einsum ii->i (diagonal)", () => check((a) => einsum("ii->i", a), [rnd([3, 3], 134)]));
    it("softmax dim -1", () => check((x) => x.softmax(-1), [rnd([2, 3], 135, -2, 2)]));
    it("softmax dim 0 (free function)", () => check((x) => softmax(x, 0), [rnd([3, 2], 136, -2, 2)]));
    it("logSoftmax dim -1", () => check((x) => x.logSoftmax(-1), [rnd([2, 3], 137, -2, 2)]));
    it("logSoftmax dim 1 of 3-d (free function)", () => check((x) => logSoftmax(x, 1), [rnd([2, 3, 2], 138, -2, 2)]));
  });

  describe("shape and indexing", () => {
    const x = () => rnd([2, 3], 150);
    const x3 = () => rnd([2, 3, 2], 151);
    it("reshape", () => check((t) => t.reshape(3, 2), [x()]));
    it("reshape with an array and -1", () => check((t) => t.reshape([-1, 4]), [x3()]));
    it("view", () => check((t) => t.view(6), [x()]));
    it("permute", () => check((t) => t.permute(2, 0, 1), [x3()]));
    it("transpose", () => check((t) => t.transpose(0, 2), [x3()]));
    it("mT", () => check((t) => t.mT, [x3()]));
    it("unsqueeze", () => check((t) => t.unsqueeze(1), [x()]));
    it("squeeze (all size-1 dims)", () => check((t) => t.squeeze(), [rnd([2, 1, 3, 1], 152)]));
    it("squeeze dim", () => check((t) => t.squeeze(1), [rnd([2, 1, 3], 153)]));
    it("flatten", () => check((t) => t.flatten(), [x3()]));
    it("flatten a dim range", () => check((t) => t.flatten(1, 2), [x3()]));
    it("expand", () => check((t) => t.expand(2, 3, 3), [rnd([3, 1], 154)]));
    it("expand with -1", () => check((t) => t.expand([4, -1]), [rnd([1, 3], 155)]));
    it("repeat", () => check((t) => t.repeat(2, 1, 3), [x()]));
    it("repeatInterleave dim 0", () => check((t) => t.repeatInterleave(2, 0), [x()]));
    it("repeatInterleave dim -1", () => check((t) => t.repeatInterleave(3, -1), [x()]));
    it("flip", () => check((t) => t.flip([0, 2]), [x3()]));
    it("narrow", () => check((t) => t.narrow(1, 1, 2), [x3()]));
    it("slice with a step", () => check((t) => t.slice(1, 0, null, 2), [rnd([2, 5], 156)]));
    it("slice with bounds", () => check((t) => t.slice(0, 1, 3), [rnd([4, 2], 157)]));
    it("slice with a negative start", () => check((t) => t.slice(-1, -2), [x()]));
    it("select", () => check((t) => t.select(1, 2), [x3()]));
    it("select with a negative index", () => check((t) => t.select(0, -1), [x()]));
    it("indexSelect with repeated indices", () => check((t) => t.indexSelect(1, i64([2, 0, 2, 1])), [x()]));
    it("gather", () => check((t) => t.gather(1, i64([0, 2, 2, 1, 1, 0], [2, 3])), [x()]));
    it("gather with fewer columns than the input", () => check((t) => t.gather(0, i64([1, 0, 1], [1, 3])), [x()]));
    it("scatter (self and source)", () =>
      check((self, src) => self.scatter(1, i64([2, 0, 1, 0], [2, 2]), src), [rnd([2, 3], 158), rnd([2, 2], 159)]));
    it("scatterAdd with repeated indices (self and source)", () =>
      check((self, src) => self.scatterAdd(1, i64([0, 0, 2, 1, 1, 1], [2, 3]), src), [rnd([2, 3], 160), rnd([2, 3], 161)]));
    it("index with one index tensor", () => check((t) => t.index([i64([1, 0, 1])]), [x()]));
    it("index with null (whole dim) and a repeated index", () => check((t) => t.index([null, i64([2, 2, 0])]), [x()]));
    it("index with two index tensors", () => check((t) => t.index([i64([0, 1, 1]), i64([2, 0, 2])]), [x()]));
    it("index with a boolean mask", () => check((t) => t.index([bool([true, false, true, true, false, true], [2, 3])]), [x()]));
    it("cat dim 0", () => check((a, b) => cat([a, b]), [rnd([2, 3], 162), rnd([1, 3], 163)]));
    it("cat dim 1", () => check((a, b) => cat([a, b], 1), [rnd([2, 1], 164), rnd([2, 3], 165)]));
    it("stack dim 0", () => check((a, b) => stack([a, b]), [rnd([2, 3], 166), rnd([2, 3], 167)]));
    it("stack dim -1", () => check((a, b) => stack([a, b], -1), [rnd([2, 3], 168), rnd([2, 3], 169)]));
    it("split by size (pieces recombined with different weights)", () =>
      check(
        (t) => {
          const [p0, p1, p2] = t.split(2, 1);
          return cat([p2!, p0!.mul(3), p1!.mul(-2)], 1);
        },
        [rnd([2, 5], 170)],
      ));
    it("split by sizes", () =>
      check(
        (t) => {
          const [p0, p1] = t.split([1, 2], 0);
          return cat([p1!.exp(), p0!.mul(2)], 0);
        },
        [rnd([3, 2], 171)],
      ));
    it("split with one unused piece", () => check((t) => t.split(1, 0)[1]!.mul(2), [x()]));
    it("chunk", () =>
      check(
        (t) => {
          const [c0, c1] = t.chunk(2, 1);
          return c0!.mul(c1!);
        },
        [rnd([2, 4], 172)],
      ));
    it("chunk with an uneven last chunk", () =>
      check(
        (t) => {
          const [c0, c1] = t.chunk(2, 0);
          return c0!.sum(0).add(c1!.sum(0).mul(5));
        },
        [rnd([3, 2], 173)],
      ));
    it("triu", () => check((t) => t.triu(), [rnd([3, 3], 174)]));
    it("triu diagonal 1", () => check((t) => t.triu(1), [rnd([3, 4], 175)]));
    it("tril", () => check((t) => t.tril(), [rnd([3, 3], 176)]));
    it("tril diagonal -1", () => check((t) => t.tril(-1), [rnd([4, 3], 177)]));
    it("topk values (largest)", () => check((t) => t.topk(2).values, [rnd([2, 4], 178)]));
    it("topk values (smallest, dim 0)", () => check((t) => t.topk(2, 0, false).values, [rnd([3, 2], 179)]));
    it("sort values ascending", () => check((t) => t.sort().values, [rnd([2, 4], 180)]));
    it("sort values descending along dim 0", () => check((t) => t.sort(0, true).values, [rnd([3, 2], 181)]));
  });

  describe("embedding", () => {
    it("grad wrt weight with repeated ids", () => check((w) => embedding(w, i64([0, 2, 4, 2], [2, 2])), [rnd([5, 3], 190)]));
    it("grad wrt weight with 1-d ids", () => check((w) => embedding(w, i64([3, 3, 1])), [rnd([4, 2], 191)]));
    it("closed form: each row's grad is the sum of the upstream grads of its occurrences", () =>
      tidy(() => {
        const w = f64(seededValues(8, 192), [4, 2]).requiresGrad_();
        const ids = i64([1, 3, 1]);
        const up = f64([1, 2, 3, 4, 5, 6], [3, 2]);
        embedding(w, ids).mul(up).sum().backward();
        expectClose(values(w.grad!), [0, 0, 1 + 5, 2 + 6, 0, 0, 3, 4], 1e-12);
      }));
  });

  describe("losses", () => {
    const logits = () => rnd([4, 3], 200, -2, 2);
    const targets = () => i64([0, 2, -100, 1]);
    it("crossEntropy mean with ignoreIndex -100 present", () => check((x) => crossEntropy(x, targets()), [logits()]));
    it("crossEntropy sum", () => check((x) => crossEntropy(x, i64([0, 2, 1, 1]), { reduction: "sum" }), [logits()]));
    it("crossEntropy sum with an ignored target", () => check((x) => crossEntropy(x, targets(), { reduction: "sum" }), [logits()]));
    it("crossEntropy none", () => check((x) => crossEntropy(x, targets(), { reduction: "none" }), [logits()]));
    it("crossEntropy labelSmoothing", () => check((x) => crossEntropy(x, i64([0, 2, 1, 1]), { labelSmoothing: 0.1 }), [logits()]));
    it("crossEntropy labelSmoothing with an ignored target", () =>
      check((x) => crossEntropy(x, targets(), { labelSmoothing: 0.2 }), [logits()]));
    it("crossEntropy with class weights", () => check((x) => crossEntropy(x, targets(), { weight: f64([0.5, 2, 1], [3]) }), [logits()]));
    it("crossEntropy on [N, C, d] logits", () => check((x) => crossEntropy(x, i64([0, 2, 1, -100], [2, 2])), [rnd([2, 3, 2], 201, -2, 2)]));
    it("closed form: crossEntropy mean with an ignored row = (softmax - onehot) / valid rows", () =>
      tidy(() => {
        const data = seededValues(12, 202, -2, 2);
        const target = [0, 2, -100, 1];
        const x = f64(data, [4, 3]).requiresGrad_();
        crossEntropy(x, i64(target)).backward();
        const valid = target.filter((t) => t !== -100).length;
        const expected: number[] = [];
        for (let r = 0; r < 4; r++) {
          const row = data.slice(r * 3, r * 3 + 3);
          const m = Math.max(...row);
          const e = row.map((v) => Math.exp(v - m));
          const z = e.reduce((a, b) => a + b, 0);
          for (let c = 0; c < 3; c++) expected.push(target[r] === -100 ? 0 : (e[c]! / z - (target[r] === c ? 1 : 0)) / valid);
        }
        expectClose(values(x.grad!), expected, 1e-10);
      }));
    it("closed form: crossEntropy labelSmoothing eps, mean = (softmax - ((1-eps) onehot + eps/C)) / N", () =>
      tidy(() => {
        const data = seededValues(6, 203, -2, 2);
        const target = [2, 0];
        const eps = 0.1;
        const x = f64(data, [2, 3]).requiresGrad_();
        crossEntropy(x, i64(target), { labelSmoothing: eps }).backward();
        const expected: number[] = [];
        for (let r = 0; r < 2; r++) {
          const row = data.slice(r * 3, r * 3 + 3);
          const e = row.map((v) => Math.exp(v));
          const z = e.reduce((a, b) => a + b, 0);
          for (let c = 0; c < 3; c++) expected.push((e[c]! / z - ((1 - eps) * (target[r] === c ? 1 : 0) + eps / 3)) / 2);
        }
        expectClose(values(x.grad!), expected, 1e-10);
      }));

    // klDiv inputs are log-probabilities; the op is differentiable for any input/target values.
    const klInput = () => rnd([2, 3], 210, -2, -0.2);
    it("klDiv logTarget false, batchmean (input and target)", () =>
      check((x, t) => klDiv(x, t, { reduction: "batchmean" }), [klInput(), rnd([2, 3], 211, 0.1, 1)]));
    it("klDiv logTarget true, batchmean (input and target)", () =>
      check((x, t) => klDiv(x, t, { reduction: "batchmean", logTarget: true }), [klInput(), rnd([2, 3], 212, -2, -0.1)]));
    it("klDiv logTarget false, sum", () => check((x, t) => klDiv(x, t, { reduction: "sum" }), [klInput(), rnd([2, 3], 213, 0.1, 1)]));
    it("klDiv logTarget true, mean", () =>
      check((x, t) => klDiv(x, t, { reduction: "mean", logTarget: true }), [klInput(), rnd([2, 3], 214, -2, -0.1)]));
    it("klDiv logTarget false, none", () => check((x, t) => klDiv(x, t, { reduction: "none" }), [klInput(), rnd([2, 3], 215, 0.1, 1)]));
    it("closed form: klDiv batchmean grads are -t/N (input) and (log t + 1 - x)/N (target)", () =>
      tidy(() => {
        const xs = seededValues(6, 216, -2, -0.2);
        const ts = seededValues(6, 217, 0.1, 1);
        const x = f64(xs, [2, 3]).requiresGrad_();
        const t = f64(ts, [2, 3]).requiresGrad_();
        klDiv(x, t, { reduction: "batchmean" }).backward();
        expectClose(
          values(x.grad!),
          ts.map((v) => -v / 2),
          1e-12,
        );
        expectClose(
          values(t.grad!),
          ts.map((v, i) => (Math.log(v) + 1 - xs[i]!) / 2),
          1e-12,
        );
      }));
    it("closed form: klDiv logTarget batchmean grad wrt input is -exp(t)/N", () =>
      tidy(() => {
        const ts = seededValues(6, 218, -2, -0.1);
        const x = f64(seededValues(6, 219, -2, -0.2), [3, 2]).requiresGrad_();
        klDiv(x, f64(ts, [3, 2]), { reduction: "batchmean", logTarget: true }).backward();
        expectClose(
          values(x.grad!),
          ts.map((v) => -Math.exp(v) / 3),
          1e-12,
        );
      }));

    it("mseLoss mean (input and target)", () => check((a, b) => mseLoss(a, b), [rnd([2, 3], 220), rnd([2, 3], 221)]));
    it("mseLoss sum", () => check((a, b) => mseLoss(a, b, "sum"), [rnd([2, 3], 222), rnd([2, 3], 223)]));
    it("mseLoss none", () => check((a, b) => mseLoss(a, b, "none"), [rnd([2, 3], 224), rnd([2, 3], 225)]));
  });

  describe("normalisation and dropout", () => {
    it("layerNorm with weight and bias (all three)", () =>
      check((x, w, b) => layerNorm(x, [4], w, b), [rnd([2, 4], 230, -2, 2), rnd([4], 231, 0.5, 1.5), rnd([4], 232)]));
    it("layerNorm without affine", () => check((x) => layerNorm(x, [3]), [rnd([2, 3], 233, -2, 2)]));
    it("layerNorm over the last two dims with a custom eps", () =>
      check((x, w) => layerNorm(x, [3, 2], w, undefined, 1e-3), [rnd([2, 3, 2], 234, -2, 2), rnd([3, 2], 235, 0.5, 1.5)]));
    it("dropout p=0.3 with a fixed seed", () => check((x) => dropout(x, 0.3), [rnd([4, 5], 236)], { seed: 1234 }));
    it("dropout in eval mode is the identity", () => check((x) => dropout(x, 0.3, false).mul(x), [rnd([2, 3], 237)]));
    it("closed form: dropout p=0.3 grads are 0 or 1/0.7 and match the output mask", () =>
      tidy(() => {
        const data = awayFromZero([4, 5], 238).data;
        const x = f64(data, [4, 5]).requiresGrad_();
        const y = dropout(x, 0.3);
        y.sum().backward();
        const g = values(x.grad!);
        const out = values(y);
        const scale = 1 / 0.7;
        g.forEach((gi, i) => {
          expect(Math.abs(gi) < 1e-12 || Math.abs(gi - scale) < 1e-12, `grad ${gi} at ${i}`).toBe(true);
          expect(out[i]).toBeCloseTo(gi * data[i]!, 12);
        });
        expect(g.some((gi) => gi === 0)).toBe(true);
        expect(g.some((gi) => gi !== 0)).toBe(true);
      }));
  });

  describe("scaledDotProductAttention", () => {
    const q = () => rnd([1, 2, 3, 2], 240);
    const kv = (seed: number, kvHeads = 2, kLen = 3) => rnd([1, kvHeads, kLen, 2], seed);
    it("plain", () => check((a, b, c) => scaledDotProductAttention(a, b, c), [q(), kv(241, 2, 4), kv(242, 2, 4)]));
    it("causal", () => check((a, b, c) => scaledDotProductAttention(a, b, c, { causal: true }), [q(), kv(243), kv(244)]));
    it("boolean mask (true = attend)", () =>
      check(
        (a, b, c) =>
          scaledDotProductAttention(a, b, c, {
            mask: bool([true, false, true, false, true, true, true, true, false, false, true, true], [3, 4]),
          }),
        [q(), kv(245, 2, 4), kv(246, 2, 4)],
      ));
    it("float additive mask", () =>
      check(
        (a, b, c) => scaledDotProductAttention(a, b, c, { mask: f64(seededValues(12, 247, -2, 1), [3, 4]) }),
        [q(), kv(248, 2, 4), kv(249, 2, 4)],
      ));
    it("causal combined with a boolean mask", () =>
      check(
        (a, b, c) =>
          scaledDotProductAttention(a, b, c, {
            causal: true,
            mask: bool([true, true, true, true, false, true, false, true, true], [3, 3]),
          }),
        [q(), kv(250), kv(251)],
      ));
    it("GQA: 4 query heads, 2 kv heads", () =>
      check((a, b, c) => scaledDotProductAttention(a, b, c), [rnd([1, 4, 3, 2], 252), kv(253), kv(254)]));
    it("GQA with causal masking", () =>
      check((a, b, c) => scaledDotProductAttention(a, b, c, { causal: true }), [rnd([1, 4, 3, 2], 255), kv(256), kv(257)]));
    it("custom scale", () => check((a, b, c) => scaledDotProductAttention(a, b, c, { scale: 0.7 }), [q(), kv(258), kv(259)]));
    it("custom scale with a float mask and GQA", () =>
      check(
        (a, b, c) => scaledDotProductAttention(a, b, c, { scale: 1.3, mask: f64(seededValues(9, 260, -1, 1), [3, 3]) }),
        [rnd([1, 4, 3, 2], 261), kv(262), kv(263)],
      ));

    // gradcheck only proves backward matches forward; these pin the forward to a JS reference.
    const dims = { batch: 1, heads: 4, kvHeads: 2, qLen: 3, kLen: 3, d: 2 };
    const qd = seededValues(24, 270);
    const kd = seededValues(12, 271);
    const vd = seededValues(12, 272);
    const run = (options: () => AttentionOptions) =>
      tidy(() => values(scaledDotProductAttention(f64(qd, [1, 4, 3, 2]), f64(kd, [1, 2, 3, 2]), f64(vd, [1, 2, 3, 2]), options())));
    it("forward: GQA + causal matches the JS reference", () =>
      expectClose(
        run(() => ({ causal: true })),
        referenceAttention(qd, kd, vd, dims, 1 / Math.sqrt(2), (i, j) => j <= i),
        1e-10,
      ));
    it("forward: GQA + boolean mask + custom scale matches the JS reference", () => {
      const allowed = [true, false, true, true, true, false, false, true, true];
      expectClose(
        run(() => ({ scale: 0.6, mask: bool(allowed, [3, 3]) })),
        referenceAttention(qd, kd, vd, dims, 0.6, (i, j) => allowed[i * 3 + j]!),
        1e-10,
      );
    });
    it("forward: GQA + float mask + causal matches the JS reference", () => {
      const add = seededValues(9, 273, -1, 1);
      const got = run(() => ({ causal: true, mask: f64(add, [3, 3]) }));
      expectClose(
        got,
        referenceAttention(
          qd,
          kd,
          vd,
          dims,
          1 / Math.sqrt(2),
          (i, j) => j <= i,
          (i, j) => add[i * 3 + j]!,
        ),
        1e-10,
      );
    });
  });
});
