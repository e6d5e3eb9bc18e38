// Op results against values computed independently in JS: elementwise (with broadcasting and
// scalars), comparisons, reductions, linear algebra, softmax, losses, attention, shape and indexing
// ops, sorting/sampling helpers and in-place variants.
import { expect, it } from "vitest";
import {
  cat,
  crossEntropy,
  dropout,
  einsum,
  embedding,
  klDiv,
  layerNorm,
  linear,
  manualSeed,
  mseLoss,
  ones,
  scaledDotProductAttention,
  stack,
  type Tensor,
  tensor,
  tidy,
  where,
  zeros,
} from "../../src/tensor/index.js";
import { forEachDevice } from "../helpers/devices.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { expectClose, seededValues, values } from "../helpers/numeric.js";

useLeakCheck();

const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is too coarse; integrate with a series instead (|x| small in tests).
  let sum = 0;
  let term = x;
  for (let n = 0; n < 60; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
};

const unaryCases: [string, (t: Tensor) => Tensor, (x: number) => number][] = [
  ["neg", (t) => t.neg(), (x) => -x],
  ["exp", (t) => t.exp(), Math.exp],
  ["abs", (t) => t.abs(), Math.abs],
  ["tanh", (t) => t.tanh(), Math.tanh],
  ["sigmoid", (t) => t.sigmoid(), (x) => 1 / (1 + Math.exp(-x))],
  ["silu", (t) => t.silu(), (x) => x / (1 + Math.exp(-x))],
  ["relu", (t) => t.relu(), (x) => Math.max(0, x)],
  ["gelu", (t) => t.gelu(), (x) => 0.5 * x * (1 + erf(x / Math.SQRT2))],
  ["gelu tanh", (t) => t.gelu("tanh"), (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))],
  ["sin", (t) => t.sin(), Math.sin],
  ["cos", (t) => t.cos(), Math.cos],
  ["square", (t) => t.square(), (x) => x * x],
  ["erf", (t) => t.erf(), erf],
  ["expm1", (t) => t.expm1(), Math.expm1],
  ["sign", (t) => t.sign(), Math.sign],
  ["floor", (t) => t.floor(), Math.floor],
  ["ceil", (t) => t.ceil(), Math.ceil],
];
const positiveCases: [string, (t: Tensor) => Tensor, (x: number) => number][] = [
  ["log", (t) => t.log(), Math.log],
  ["sqrt", (t) => t.sqrt(), Math.sqrt],
  ["rsqrt", (t) => t.rsqrt(), (x) => 1 / Math.sqrt(x)],
  ["reciprocal", (t) => t.reciprocal(), (x) => 1 / x],
  ["log1p", (t) => t.log1p(), Math.log1p],
];

forEachDevice("ops", (device) => {
  const f64 = (data: number[], shape: number[]) => tensor(Float64Array.from(data), { shape, device });
  const xs = seededValues(12, 1, -2, 2);
  const ys = seededValues(12, 2, 0.5, 3);

  it("computes unary ops", () =>
    tidy(() => {
      for (const [, op, ref] of unaryCases) expectClose(values(op(f64(xs, [3, 4]))), xs.map(ref), 1e-12);
      for (const [, op, ref] of positiveCases) expectClose(values(op(f64(ys, [3, 4]))), ys.map(ref), 1e-12);
      expect(values(tensor([NaN, 1, Infinity], { device }).isnan())).toEqual([1, 0, 0]);
      expect(values(tensor([NaN, 1, Infinity], { device }).isfinite())).toEqual([0, 1, 0]);
    }));

  it("computes binary ops with broadcasting and scalars", () =>
    tidy(() => {
      const a = f64(xs, [3, 4]);
      const row = seededValues(4, 3, 0.5, 2);
      const b = f64(row, [4]);
      const bc = (i: number) => row[i % 4]!;
      expectClose(
        values(a.add(b)),
        xs.map((x, i) => x + bc(i)),
      );
      expectClose(
        values(a.add(b, 0.5)),
        xs.map((x, i) => x + 0.5 * bc(i)),
      );
      expectClose(
        values(a.sub(b)),
        xs.map((x, i) => x - bc(i)),
      );
      expectClose(
        values(a.mul(b)),
        xs.map((x, i) => x * bc(i)),
      );
      expectClose(
        values(a.div(b)),
        xs.map((x, i) => x / bc(i)),
      );
      expectClose(
        values(b.pow(a)),
        xs.map((x, i) => bc(i) ** x),
        1e-10,
      );
      expectClose(
        values(a.maximum(b)),
        xs.map((x, i) => Math.max(x, bc(i))),
      );
      expectClose(
        values(a.minimum(b)),
        xs.map((x, i) => Math.min(x, bc(i))),
      );
      expectClose(
        values(a.atan2(b)),
        xs.map((x, i) => Math.atan2(x, bc(i))),
      );
      expectClose(
        values(a.add(3)),
        xs.map((x) => x + 3),
      );
      expectClose(
        values(a.rsub(1)),
        xs.map((x) => 1 - x),
      );
      expectClose(
        values(a.rdiv(2)),
        xs.map((x) => 2 / x),
        1e-10,
      );
      expectClose(
        values(a.pow(2)),
        xs.map((x) => x * x),
      );
      expect(values(a.gt(0))).toEqual(xs.map((x) => (x > 0 ? 1 : 0)));
      expect(values(a.le(b))).toEqual(xs.map((x, i) => (x <= bc(i) ? 1 : 0)));
      expect(values(a.eq(a))).toEqual(xs.map(() => 1));
      expect(values(a.ne(a))).toEqual(xs.map(() => 0));
      expect(values(tensor([5, -5, 7], { device }).remainder(3))).toEqual([2, 1, 1]);
      expect(values(tensor([7, -7], { device }).floorDivide(2))).toEqual([3, -4]);
      const p = tensor([true, true, false, false], { device });
      const q = tensor([true, false, true, false], { device });
      expect(values(p.logicalAnd(q))).toEqual([1, 0, 0, 0]);
      expect(values(p.logicalOr(q))).toEqual([1, 1, 1, 0]);
      expect(values(p.logicalXor(q))).toEqual([0, 1, 1, 0]);
      expect(values(p.logicalNot())).toEqual([0, 0, 1, 1]);
    }));

  it("keeps integer dtypes with integer scalars, like Python ints", () =>
    tidy(() => {
      const i = tensor([1, 2, 3], { dtype: "i64", device });
      expect(i.add(2).dtype).toBe("i64");
      expect(i.mul(2.5).dtype).toBe("f32");
      expect(tensor([1, 2], { dtype: "f16", device }).add(1.5).dtype).toBe("f16");
    }));

  it("selects with where, maskedFill and clamp", () =>
    tidy(() => {
      const a = f64(xs, [12]);
      const mask = a.gt(0);
      expectClose(
        values(where(mask, a, 0)),
        xs.map((x) => (x > 0 ? x : 0)),
      );
      expectClose(
        values(where(mask, 1, a)),
        xs.map((x) => (x > 0 ? 1 : x)),
      );
      expectClose(
        values(a.maskedFill(mask, -9)),
        xs.map((x) => (x > 0 ? -9 : x)),
      );
      expectClose(
        values(a.clamp(-1, 0.5)),
        xs.map((x) => Math.min(0.5, Math.max(-1, x))),
      );
      expectClose(
        values(a.clamp(null, 0)),
        xs.map((x) => Math.min(0, x)),
      );
      expectClose(
        values(a.lerp(zeros([12], { dtype: "f64", device }), 0.25)),
        xs.map((x) => 0.75 * x),
      );
    }));

  it("reduces along dims with keepdim", () =>
    tidy(() => {
      const a = f64(xs, [3, 4]);
      const rows = [0, 1, 2].map((r) => xs.slice(r * 4, r * 4 + 4));
      const cols = [0, 1, 2, 3].map((c) => rows.map((r) => r[c]!));
      const sum = (v: number[]) => v.reduce((s, x) => s + x, 0);
      expectClose(values(a.sum()), [sum(xs)]);
      expectClose(values(a.sum(1)), rows.map(sum));
      expect(a.sum(1, true).shape).toEqual([3, 1]);
      expectClose(
        values(a.mean(0)),
        cols.map((c) => sum(c) / 3),
      );
      expectClose(
        values(a.max(1)),
        rows.map((r) => Math.max(...r)),
      );
      expectClose(values(a.min()), [Math.min(...xs)]);
      expectClose(values(a.max([0, 1])), [Math.max(...xs)]);
      expect(values(a.argmax(1))).toEqual(rows.map((r) => r.indexOf(Math.max(...r))));
      expect(values(a.argmin())).toEqual([xs.indexOf(Math.min(...xs))]);
      const { values: mv, indices } = a.maxWithIndices(0, true);
      expect(mv.shape).toEqual([1, 4]);
      expect(values(indices)).toEqual(cols.map((c) => c.indexOf(Math.max(...c))));
      expectClose(
        values(a.logsumexp(1)),
        rows.map((r) => Math.log(sum(r.map(Math.exp)))),
      );
      expectClose(values(a.norm()), [Math.sqrt(sum(xs.map((x) => x * x)))]);
      expectClose(
        values(a.norm(1, 1)),
        rows.map((r) => sum(r.map(Math.abs))),
      );
      expectClose(values(a.norm(Infinity)), [Math.max(...xs.map(Math.abs))]);
      const variance = (v: number[], unbiased: boolean) => {
        const m = sum(v) / v.length;
        return sum(v.map((x) => (x - m) ** 2)) / (v.length - (unbiased ? 1 : 0));
      };
      expectClose(
        values(a.var(1)),
        rows.map((r) => variance(r, true)),
      );
      expectClose(values(a.var(undefined, { unbiased: false })), [variance(xs, false)]);
      expectClose(
        values(a.std(0)),
        cols.map((c) => Math.sqrt(variance(c, true))),
      );
      expectClose(
        values(a.prod(1)),
        rows.map((r) => r.reduce((p, x) => p * x, 1)),
      );
      expectClose(
        values(a.cumsum(1)),
        rows.flatMap((r) => r.map((_, i) => sum(r.slice(0, i + 1)))),
      );
      const b = a.gt(0);
      expect(values(b.any(1))).toEqual(rows.map((r) => (r.some((x) => x > 0) ? 1 : 0)));
      expect(values(b.all())).toEqual([xs.every((x) => x > 0) ? 1 : 0]);
    }));

  it("multiplies matrices (matmul, bmm, linear, outer, einsum)", () =>
    tidy(() => {
      const av = seededValues(6, 5);
      const bv = seededValues(12, 6);
      const a = f64(av, [2, 3]);
      const b = f64(bv, [3, 4]);
      const ref: number[] = [];
      for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) ref.push([0, 1, 2].reduce((s, k) => s + av[i * 3 + k]! * bv[k * 4 + j]!, 0));
      expectClose(values(a.matmul(b)), ref);
      expectClose(values(einsum("ik,kj->ij", a, b)), ref);
      expectClose(values(a.unsqueeze(0).bmm(b.unsqueeze(0))), ref);
      const bias = f64([1, 2, 3, 4], [4]);
      expectClose(
        values(linear(a, b.transpose(0, 1), bias)),
        ref.map((v, i) => v + [1, 2, 3, 4][i % 4]!),
      );
      expectClose(values(linear(a, b.transpose(0, 1))), ref);
      expectClose(values(f64([1, 2], [2]).outer(f64([3, 4, 5], [3]))), [3, 4, 5, 6, 8, 10]);
    }));

  it("normalises with softmax, logSoftmax and layerNorm", () =>
    tidy(() => {
      const a = f64(xs, [3, 4]);
      const rows = [0, 1, 2].map((r) => xs.slice(r * 4, r * 4 + 4));
      const softmaxRef = rows.flatMap((r) => {
        const m = Math.max(...r);
        const e = r.map((x) => Math.exp(x - m));
        const s = e.reduce((p, x) => p + x, 0);
        return e.map((x) => x / s);
      });
      expectClose(values(a.softmax(-1)), softmaxRef);
      expectClose(values(a.logSoftmax(1)), softmaxRef.map(Math.log));
      const layerRef = rows.flatMap((r) => {
        const m = r.reduce((p, x) => p + x, 0) / 4;
        const v = r.reduce((p, x) => p + (x - m) ** 2, 0) / 4;
        return r.map((x) => (x - m) / Math.sqrt(v + 1e-5));
      });
      expectClose(values(layerNorm(a, [4])), layerRef);
    }));

  it("computes cross-entropy with ignore_index and reductions, KL and MSE", () =>
    tidy(() => {
      const logits = seededValues(12, 7, -2, 2);
      const targets = [2, -100, 0];
      const rows = [0, 1, 2].map((r) => logits.slice(r * 4, r * 4 + 4));
      const nll = rows.map((r, i) => {
        const lse = Math.log(r.reduce((s, x) => s + Math.exp(x), 0));
        return targets[i] === -100 ? 0 : lse - r[targets[i]!]!;
      });
      const l = f64(logits, [3, 4]);
      const t = tensor(targets.map(BigInt), { device });
      expectClose(values(crossEntropy(l, t)), [(nll[0]! + nll[2]!) / 2]);
      expectClose(values(crossEntropy(l, t, { reduction: "sum" })), [nll[0]! + nll[2]!]);
      expectClose(values(crossEntropy(l, t, { reduction: "none" })), nll);
      // KL(p || q) with input = log q, target = p.
      const p = [0.2, 0.3, 0.5];
      const q = [0.25, 0.25, 0.5];
      const kl = p.map((pi, i) => pi * (Math.log(pi) - Math.log(q[i]!)));
      const logq = f64(q.map(Math.log), [1, 3]);
      expectClose(values(klDiv(logq, f64(p, [1, 3]), { reduction: "sum" })), [kl.reduce((s, x) => s + x, 0)]);
      expectClose(values(klDiv(logq, f64(p.map(Math.log), [1, 3]), { reduction: "none", logTarget: true })), kl);
      expectClose(values(klDiv(logq, f64(p, [1, 3]), { reduction: "batchmean" })), [kl.reduce((s, x) => s + x, 0)]);
      expectClose(values(mseLoss(f64([1, 2], [2]), f64([0, 4], [2]))), [2.5]);
    }));

  it("matches a JS attention with causal, boolean and additive masks and GQA", () =>
    tidy(() => {
      const [heads, kvHeads, len, dHead] = [4, 2, 3, 2];
      const qv = seededValues(heads * len * dHead, 11);
      const kv = seededValues(kvHeads * len * dHead, 12);
      const vv = seededValues(kvHeads * len * dHead, 13);
      const at = (arr: number[], h: number, i: number, d: number) => arr[(h * len + i) * dHead + d]!;
      const reference = (allowed: (i: number, j: number) => boolean, scale: number, bias = (_i: number, _j: number) => 0) => {
        const out: number[] = [];
        for (let h = 0; h < heads; h++) {
          const g = Math.floor(h / (heads / kvHeads));
          for (let i = 0; i < len; i++) {
            const scores = [...Array(len).keys()].map((j) =>
              allowed(i, j) ? scale * [0, 1].reduce((s, d) => s + at(qv, h, i, d) * at(kv, g, j, d), 0) + bias(i, j) : -Infinity,
            );
            const m = Math.max(...scores);
            const w = scores.map((s) => Math.exp(s - m));
            const z = w.reduce((s, x) => s + x, 0);
            for (let d = 0; d < dHead; d++) out.push(w.reduce((s, x, j) => s + (x / z) * at(vv, g, j, d), 0));
          }
        }
        return out;
      };
      const q = f64(qv, [1, heads, len, dHead]);
      const k = f64(kv, [1, kvHeads, len, dHead]);
      const v = f64(vv, [1, kvHeads, len, dHead]);
      const s = 1 / Math.sqrt(dHead);
      expectClose(
        values(scaledDotProductAttention(q, k, v, { causal: true })),
        reference((i, j) => j <= i, s),
        1e-10,
      );
      expectClose(
        values(scaledDotProductAttention(q, k, v)),
        reference(() => true, s),
        1e-10,
      );
      const boolMask = tensor(
        [
          [true, false, true],
          [true, true, false],
          [false, true, true],
        ],
        { device },
      );
      const allowedByMask = (i: number, j: number) =>
        [
          [1, 0, 1],
          [1, 1, 0],
          [0, 1, 1],
        ][i]![j] === 1;
      expectClose(values(scaledDotProductAttention(q, k, v, { mask: boolMask, scale: 0.7 })), reference(allowedByMask, 0.7), 1e-10);
      const biasValues = seededValues(9, 14);
      const additive = f64(biasValues, [3, 3]);
      expectClose(
        values(scaledDotProductAttention(q, k, v, { mask: additive, causal: true })),
        reference(
          (i, j) => j <= i,
          s,
          (i, j) => biasValues[i * 3 + j]!,
        ),
        1e-10,
      );
    }));

  it("reshapes, permutes and views", () =>
    tidy(() => {
      const a = tensor(
        Float32Array.from({ length: 24 }, (_, i) => i),
        { shape: [2, 3, 4], device },
      );
      expect(a.reshape(4, 6).shape).toEqual([4, 6]);
      expect(a.view([6, -1]).shape).toEqual([6, 4]);
      const p = a.permute(2, 0, 1);
      expect(p.shape).toEqual([4, 2, 3]);
      expect(values(p.contiguous()).slice(0, 6)).toEqual([0, 4, 8, 12, 16, 20]);
      expect(a.transpose(0, 2).shape).toEqual([4, 3, 2]);
      expect(a.unsqueeze(1).shape).toEqual([2, 1, 3, 4]);
      expect(a.unsqueeze(1).squeeze(1).shape).toEqual([2, 3, 4]);
      expect(ones([1, 3, 1], { device }).squeeze().shape).toEqual([3]);
      expect(a.flatten().shape).toEqual([24]);
      expect(a.flatten(1).shape).toEqual([2, 12]);
      expect(tensor([1, 2], { device }).unsqueeze(1).expand(2, 3).toList()).toEqual([
        [1, 1, 1],
        [2, 2, 2],
      ]);
      expect(tensor([1, 2], { device }).repeat(2).toList()).toEqual([1, 2, 1, 2]);
      expect(tensor([1, 2], { device }).repeatInterleave(2, 0).toList()).toEqual([1, 1, 2, 2]);
      expect(tensor([1, 2, 3], { device }).flip([0]).toList()).toEqual([3, 2, 1]);
      expect(() => a.transpose(0, 1).view(24)).toThrow(/view/);
    }));

  it("slices, selects, joins and splits", () =>
    tidy(() => {
      const a = tensor(
        Float32Array.from({ length: 12 }, (_, i) => i),
        { shape: [3, 4], device },
      );
      expect(a.narrow(1, 1, 2).toList()).toEqual([
        [1, 2],
        [5, 6],
        [9, 10],
      ]);
      expect(a.slice(1, null, null, 2).toList()).toEqual([
        [0, 2],
        [4, 6],
        [8, 10],
      ]);
      expect(a.slice(0, -1).toList()).toEqual([[8, 9, 10, 11]]);
      expect(a.select(0, 1).toList()).toEqual([4, 5, 6, 7]);
      expect(cat([a, a], 0).shape).toEqual([6, 4]);
      expect(stack([a, a], 1).shape).toEqual([3, 2, 4]);
      expect(a.split(3, 1).map((t) => t.shape)).toEqual([
        [3, 3],
        [3, 1],
      ]);
      expect(a.split([1, 3], 1).map((t) => t.shape)).toEqual([
        [3, 1],
        [3, 3],
      ]);
      expect(a.chunk(2, 1).map((t) => t.toList())).toEqual([
        [
          [0, 1],
          [4, 5],
          [8, 9],
        ],
        [
          [2, 3],
          [6, 7],
          [10, 11],
        ],
      ]);
      expect(a.triu().toList()).toEqual([
        [0, 1, 2, 3],
        [0, 5, 6, 7],
        [0, 0, 10, 11],
      ]);
      expect(a.tril(-1).toList()).toEqual([
        [0, 0, 0, 0],
        [4, 0, 0, 0],
        [8, 9, 0, 0],
      ]);
    }));

  it("indexes with indexSelect, gather, scatter, embedding and advanced indices", () =>
    tidy(() => {
      const a = tensor(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        { device },
      );
      const idx = tensor([2n, 0n], { device });
      expect(a.indexSelect(1, idx).toList()).toEqual([
        [3, 1],
        [6, 4],
      ]);
      const g = tensor(
        [
          [0n, 0n],
          [1n, 2n],
        ],
        { device },
      );
      expect(a.gather(1, g).toList()).toEqual([
        [1, 1],
        [5, 6],
      ]);
      const src = tensor(
        [
          [10, 20],
          [30, 40],
        ],
        { device },
      );
      expect(
        zeros([2, 3], { device })
          .scatter(1, g.slice(1, 1), src.slice(1, 0, 1))
          .toList(),
      ).toEqual([
        [10, 0, 0],
        [0, 0, 30],
      ]);
      expect(zeros([2, 3], { device }).scatterAdd(1, g, src).toList()).toEqual([
        [30, 0, 0],
        [0, 30, 40],
      ]);
      const weight = tensor(
        [
          [0, 0],
          [1, 1],
          [2, 2],
        ],
        { device },
      );
      expect(embedding(weight, tensor([[2n, 1n]], { device })).toList()).toEqual([
        [
          [2, 2],
          [1, 1],
        ],
      ]);
      expect(a.index([null, tensor([1n], { device })]).toList()).toEqual([[2], [5]]);
      const b = a.clone();
      b.indexPut_([tensor([0n, 1n], { device }), tensor([0n, 2n], { device })], tensor([-1, -2], { device }));
      expect(b.toList()).toEqual([
        [-1, 2, 3],
        [4, 5, -2],
      ]);
    }));

  it("sorts, picks top-k and samples", () =>
    tidy(() => {
      const a = f64(xs, [12]);
      const sorted = [...xs].sort((p, q) => p - q);
      const { values: sv, indices } = a.sort();
      expect(values(sv)).toEqual(sorted);
      expect(values(indices).map((i) => xs[i])).toEqual(sorted);
      expect(values(a.sort(0, true).values)).toEqual([...sorted].reverse());
      expect(values(a.argsort()).map((i) => xs[i])).toEqual(sorted);
      const top = a.topk(3);
      expect(values(top.values)).toEqual([...sorted].reverse().slice(0, 3));
      expect(values(a.topk(2, 0, false).values)).toEqual(sorted.slice(0, 2));
      manualSeed(0);
      const probs = tensor([0.1, 0, 0.9], { device });
      const draws = values(probs.multinomial(2000, true));
      expect(draws.includes(1)).toBe(false);
      const share = draws.filter((d) => d === 2).length / draws.length;
      expect(Math.abs(share - 0.9)).toBeLessThan(0.03);
    }));

  it("applies dropout with the right rate and scaling", () =>
    tidy(() => {
      manualSeed(1);
      const out = values(dropout(ones([10000], { device }), 0.3, true));
      const kept = out.filter((v) => v !== 0);
      expect(Math.abs(kept.length / out.length - 0.7)).toBeLessThan(0.03);
      expectClose([kept[0]!], [1 / 0.7]);
      expect(values(dropout(ones([5], { device }), 0.3, false))).toEqual([1, 1, 1, 1, 1]);
    }));

  it("updates in place and returns the receiver", () =>
    tidy(() => {
      const a = tensor([1, 2, 3], { device });
      expect(a.add_(1)).toBe(a);
      expect(values(a)).toEqual([2, 3, 4]);
      a.sub_(tensor([1, 1, 1], { device }), 2);
      expect(values(a)).toEqual([0, 1, 2]);
      a.mul_(3).div_(tensor([1, 3, 2], { device }));
      expect(values(a)).toEqual([0, 1, 3]);
      a.clamp_(0.5, 2);
      expect(values(a)).toEqual([0.5, 1, 2]);
      a.copy_(tensor([7, 8, 9], { device }));
      expect(values(a)).toEqual([7, 8, 9]);
      a.fill_(4);
      expect(values(a)).toEqual([4, 4, 4]);
      a.zero_();
      expect(values(a)).toEqual([0, 0, 0]);
    }));
});
