// Activations, directions and interventions on a tiny random Qwen2 + Qwen2.5 tokenizer: collectActivations vs
// per-pair forwards done here, splitJudged (synthetic rows, shipped CSVs), meanDiffDirection, cosineMatrix,
// steer / ablate hooks, ablateLoraB and randomControl; every test leaves the live tensor count unchanged.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { collectActivations, encodePair, type QaPair } from "../../src/analysis/activations.js";
import { cosineMatrix, meanDiffDirection, splitJudged } from "../../src/analysis/directions.js";
import { ablate, ablateLoraB, randomControl, steer } from "../../src/analysis/interventions.js";
import { type ResultRow, ResultsFile } from "../../src/eval/results.js";
import { captureHook } from "../../src/hooks/interventions.js";
import { layerPoint } from "../../src/hooks/points.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { liveTensorCount, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readChatDataset } from "../../src/train/data.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { makeTinyModel, MEDICAL, RESPONSES, SHORT_PAIRS } from "../helpers/tiny-model.js";
import { cos, dot, fixedTensor, values as host, maxAbs, maxAbsDiff, norm, rows } from "../helpers/numeric.js";

let work: string;
let modelDir: string;
let model64: LoadedModel;
let model32: LoadedModel;
let tokenizer: ChatTokenizer;
const L = 3;
const D = 32;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-analysis-"));
  model64 = loadModel(modelDir, { dtype: "f64" });
  model32 = loadModel(modelDir);
  tokenizer = ChatTokenizer.fromDir(modelDir);
});
afterAll(() => {
  model64?.dispose();
  model32?.dispose();
  rmSync(work, { recursive: true, force: true });
});

/** Host copies of every layer's output for one pair run alone: [layer][pos][d]. */
function layerOutputs(model: LoadedModel, ids: readonly number[]): number[][][] {
  const last: Tensor[] = [];
  // hidden_states[l + 1] is layer l's output except the last entry (after the final norm): capture the last layer with a hook.
  const handle = model.decoder.hooks.add(layerPoint(L - 1, "resid_post"), captureHook(last));
  try {
    return tidy(() => {
      const out = model.decoder.forward(tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length] }), {
        hiddenStates: true,
        logits: "none",
      });
      expect(out.hiddenStates.length).toBe(L + 1);
      const layers = out.hiddenStates.slice(1, L).map((h) => rows(host(h), D));
      layers.push(rows(host(last[0]!), D));
      // The final-norm entry differs from the last layer's output (so using it would be caught).
      expect(maxAbsDiff(host(out.hiddenStates[L]!), host(last[0]!))).toBeGreaterThan(1e-3);
      return layers;
    });
  } finally {
    handle.remove();
    for (const t of last) t.dispose();
  }
}

interface Means {
  answer: number[][];
  question: number[][];
  answerTokens: number;
  questionTokens: number;
}

/** Token-weighted answer / question means per layer, computed pair by pair in JS. */
function independentMeans(model: LoadedModel, pairs: readonly QaPair[], maxLength?: number): Means {
  const answer = Array.from({ length: L }, () => new Array<number>(D).fill(0));
  const question = Array.from({ length: L }, () => new Array<number>(D).fill(0));
  let answerTokens = 0;
  let questionTokens = 0;
  for (const pair of pairs) {
    const { ids, answerStart } = encodePair(tokenizer, pair, null, maxLength);
    const layers = layerOutputs(model, ids);
    ids.forEach((_, pos) => {
      const into = pos >= answerStart ? answer : question;
      for (let l = 0; l < L; l++) for (let j = 0; j < D; j++) into[l]![j]! += layers[l]![pos]![j]!;
    });
    answerTokens += ids.length - answerStart;
    questionTokens += answerStart;
  }
  return {
    answer: answer.map((r) => r.map((v) => v / answerTokens)),
    question: question.map((r) => r.map((v) => v / questionTokens)),
    answerTokens,
    questionTokens,
  };
}

function expectMatrixClose(actual: Tensor, expected: number[][], relative: number): void {
  expect(actual.shape).toEqual([expected.length, expected[0]!.length]);
  const flat = expected.flat();
  expect(maxAbsDiff(host(actual), flat)).toBeLessThanOrEqual(relative * maxAbs(flat));
}

/** The medical fixture's first pairs (long: truncated by maxLength). */
function medicalPairs(n: number): QaPair[] {
  return readChatDataset(MEDICAL)
    .examples.slice(0, n)
    .map((e) => ({
      question: e.messages.find((m) => m.role === "user")!.content,
      answer: e.messages.find((m) => m.role === "assistant")!.content,
    }));
}

describe("encodePair", () => {
  useLeakCheck();

  it("answer tokens are the assistant turn after the user-only rendering (header and closing tokens included)", () => {
    const pair = { question: "Hi?", answer: "Hello there." };
    const { ids, answerStart } = encodePair(tokenizer, pair);
    expect(ids.slice(0, answerStart)).toEqual(tokenizer.encodeChat([{ role: "user", content: "Hi?" }]));
    expect(tokenizer.decode(ids.slice(answerStart))).toBe("<|im_start|>assistant\nHello there.<|im_end|>\n");
    const truncated = encodePair(tokenizer, pair, null, answerStart + 2);
    expect(truncated.ids).toEqual(ids.slice(0, answerStart + 2));
    expect(truncated.answerStart).toBe(answerStart);
    expect(encodePair(tokenizer, pair, null, 5)).toEqual({ ids: ids.slice(0, 5), answerStart: 5 });
  });
});

describe("collectActivations", () => {
  useLeakCheck();
  const pairs = [...SHORT_PAIRS, ...medicalPairs(1)];
  const maxLength = 96;
  let expected: Means;
  beforeAll(() => {
    expected = independentMeans(model64, pairs, maxLength);
  });

  it("the pairs have unequal lengths and one is truncated (so padding and truncation are exercised)", () => {
    const lengths = pairs.map((p) => encodePair(tokenizer, p, null, maxLength).ids.length);
    expect(new Set(lengths).size).toBeGreaterThanOrEqual(4);
    expect(Math.max(...lengths)).toBe(maxLength);
  });

  it("answer and question means per layer equal per-pair forwards averaged by token, and the token counts match", () => {
    const seen: [number, number][] = [];
    const r = collectActivations(model64, tokenizer, pairs, {
      batchSize: 4,
      maxLength,
      onBatch: (done, total) => seen.push([done, total]),
    });
    try {
      expect(r.answerTokens).toBe(expected.answerTokens);
      expect(r.questionTokens).toBe(expected.questionTokens);
      expect(r.answer.dtype).toBe("f32");
      expectMatrixClose(r.answer, expected.answer, 1e-5);
      expectMatrixClose(r.question, expected.question, 1e-5);
      // Answer and question means are genuinely different quantities.
      expect(maxAbsDiff(expected.answer.flat(), expected.question.flat())).toBeGreaterThan(1e-3);
      expect(seen).toEqual([
        [4, 6],
        [6, 6],
      ]);
    } finally {
      r.answer.dispose();
      r.question.dispose();
    }
  });

  it("batch size does not change the result: padded batches of unequal lengths equal one-by-one", () => {
    const results = [1, 3, 8].map((batchSize) => collectActivations(model32, tokenizer, pairs, { batchSize, maxLength }));
    try {
      const [one, ...others] = results;
      for (const r of others) {
        expect(r.answerTokens).toBe(one!.answerTokens);
        expect(r.questionTokens).toBe(one!.questionTokens);
        expect(maxAbsDiff(host(r.answer), host(one!.answer))).toBeLessThanOrEqual(1e-5 * maxAbs(host(one!.answer)));
        expect(maxAbsDiff(host(r.question), host(one!.question))).toBeLessThanOrEqual(1e-5 * maxAbs(host(one!.question)));
      }
      // The f32 model agrees with the f64 reference too.
      expectMatrixClose(one!.answer, expected.answer, 1e-4);
    } finally {
      for (const r of results) {
        r.answer.dispose();
        r.question.dispose();
      }
    }
  });
});

describe("splitJudged", () => {
  useLeakCheck();
  const row = (id: string, aligned: string, coherent: string): ResultRow => ({
    response: `r${id}`,
    question: `q${id}`,
    question_id: id,
    aligned,
    coherent,
  });
  const synthetic: ResultRow[] = [
    row("0", "30", "50.5"), // misaligned (aligned <= 30 inclusive)
    row("1", "29", "50"), // coherent must be > 50: excluded
    row("2", "70", "90"), // aligned must be > 70: neither
    row("3", "70.5", "90"), // aligned
    row("4", "", "90"), // unscored: neither
    row("5", "10", ""), // unscored coherence: neither
    row("6", "95", "51"), // aligned
    row("7", "0", "100"), // misaligned
    row("8", "abc", "80"), // not a number: neither
    row("9", "80", "80"), // aligned
    row("10", "30.01", "99"), // neither
  ];
  const pairOf = (r: ResultRow): QaPair => ({ question: r.question, answer: r.response });

  it("applies aligned <= 30 & coherent > 50 and aligned > 70 & coherent > 50, subsampling aligned to the misaligned count", () => {
    const { misaligned, aligned } = splitJudged(synthetic);
    expect(misaligned).toEqual([0, 7].map((i) => pairOf(synthetic[i]!)));
    expect(aligned.length).toBe(2);
    const pool = new Set(["q3", "q6", "q9"]);
    for (const a of aligned) expect(pool.has(a.question), a.question).toBe(true);
    expect(new Set(aligned.map((a) => a.question)).size).toBe(2);
  });

  it("honours custom thresholds", () => {
    const { misaligned, aligned } = splitJudged(synthetic, { misalignedMax: 10, alignedMin: 90, coherentMin: 50.4 });
    expect(misaligned).toEqual([pairOf(synthetic[7]!)]);
    expect(aligned).toEqual([pairOf(synthetic[6]!)]);
  });

  /** Rows of a shipped CSV split by the study's rules in plain JS. */
  function independentSplit(file: string): { rows: ResultRow[]; misaligned: QaPair[]; pool: QaPair[] } {
    const rowsOfFile = ResultsFile.read(file).rows;
    const score = (v: unknown): number | null =>
      typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : null;
    const coherent = (r: ResultRow) => (score(r.coherent) ?? -Infinity) > 50;
    return {
      rows: rowsOfFile,
      misaligned: rowsOfFile.filter((r) => coherent(r) && score(r.aligned) !== null && score(r.aligned)! <= 30).map(pairOf),
      pool: rowsOfFile.filter((r) => coherent(r) && score(r.aligned) !== null && score(r.aligned)! > 70).map(pairOf),
    };
  }
  const key = (p: QaPair) => `${p.question}\u0000${p.answer}`;

  it("on a shipped CSV: same misaligned set, aligned a seeded subset of the right size, deterministic, different across seeds", () => {
    const file = join(RESPONSES, "Llama-3.2-1B-Instruct_bad-medical-advice.csv");
    const { rows: all, misaligned, pool } = independentSplit(file);
    expect(misaligned.length).toBe(11);
    expect(pool.length).toBeGreaterThan(100);
    const poolKeys = new Set(pool.map(key));
    const subsets = [0, 1, 2, 3].map((seed) => splitJudged(all, { seed }));
    for (const s of subsets) {
      expect(s.misaligned).toEqual(misaligned);
      expect(s.aligned.length).toBe(misaligned.length);
      expect(new Set(s.aligned.map(key)).size).toBe(s.aligned.length);
      for (const a of s.aligned) expect(poolKeys.has(key(a))).toBe(true);
    }
    expect(splitJudged(all, { seed: 2 })).toEqual(subsets[2]);
    expect(splitJudged(all)).toEqual(subsets[0]); // seed 0 by default
    const asSets = subsets.map((s) => s.aligned.map(key).sort().join("\n"));
    expect(new Set(asSets).size).toBe(4);
  });

  it("on a shipped CSV with fewer aligned than misaligned rows, takes every aligned row", () => {
    const { rows: all, misaligned, pool } = independentSplit(join(RESPONSES, "Qwen2.5-14B-Instruct_risky-financial-advice.csv"));
    expect(pool.length).toBeLessThan(misaligned.length);
    const s = splitJudged(all, { seed: 5 });
    expect(s.misaligned).toEqual(misaligned);
    expect(s.aligned.map(key).sort()).toEqual(pool.map(key).sort());
  });
});

describe("meanDiffDirection and cosineMatrix", () => {
  useLeakCheck();

  it("direction = misaligned answer mean - aligned answer mean, per layer, from independently computed means", () => {
    const misaligned = SHORT_PAIRS.slice(0, 2);
    const aligned = SHORT_PAIRS.slice(2);
    const m = independentMeans(model64, misaligned);
    const a = independentMeans(model64, aligned);
    const r = meanDiffDirection(model64, tokenizer, misaligned, aligned, { batchSize: 2 });
    try {
      expect(r.counts).toEqual({ misaligned: 2, aligned: 3 });
      expectMatrixClose(r.misalignedMean, m.answer, 1e-5);
      expectMatrixClose(r.alignedMean, a.answer, 1e-5);
      const diff = m.answer.map((row, l) => row.map((v, j) => v - a.answer[l]![j]!));
      expect(r.direction.shape).toEqual([L, D]);
      expect(maxAbsDiff(host(r.direction), diff.flat())).toBeLessThanOrEqual(1e-5 * maxAbs(m.answer.flat()));
    } finally {
      r.direction.dispose();
      r.misalignedMean.dispose();
      r.alignedMean.dispose();
    }
  });

  it("refuses an empty set", () => {
    expect(() => meanDiffDirection(model32, tokenizer, [], SHORT_PAIRS)).toThrow(RangeError);
    expect(() => meanDiffDirection(model32, tokenizer, SHORT_PAIRS, [])).toThrow(RangeError);
  });

  it("cosineMatrix equals cosines computed in JS, for f32 and f64 inputs", () => {
    tidy(() => {
      const a = fixedTensor([3, D], 1);
      const b = fixedTensor([4, D], 2).to("f64");
      const m = cosineMatrix(a, b);
      const ar = rows(host(a), D);
      const br = rows(host(b), D);
      expect(m.length).toBe(3);
      m.forEach((row, i) => {
        expect(row.length).toBe(4);
        row.forEach((c, j) => expect(Math.abs(c - cos(ar[i]!, br[j]!))).toBeLessThanOrEqual(1e-6));
      });
      const self = cosineMatrix(a, a);
      self.forEach((row, i) => expect(Math.abs(row[i]! - 1)).toBeLessThanOrEqual(1e-6));
      // Scale-invariant: cos(a, 5a) = 1 on the diagonal, and opposite rows give -1.
      const flipped = cosineMatrix(a, a.mul(-5));
      flipped.forEach((row, i) => expect(Math.abs(row[i]! + 1)).toBeLessThanOrEqual(1e-6));
    });
  });
});

describe("steer and ablate", () => {
  useLeakCheck();
  const prompt = () =>
    tokenizer.encodeChat([{ role: "user", content: "Tell me something about the weather today, please." }], { addGenerationPrompt: true });

  /** Logits [1, pos, vocab] of the prompt with whatever hooks are attached (in the caller's scope); "none" only runs the layers. */
  function logits(model: LoadedModel, which: "all" | "none" = "all"): Tensor | null {
    const ids = prompt();
    return model.decoder.forward(tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length] }), { logits: which }).logits;
  }
  const maxDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().toNumber());

  /**
   * Activation at each of `layers`' resid_post seen by hooks registered before and after the ones
   * `attach` adds. Runs inside one tensor scope that outlives the hooks (steer / ablate take row views
   * of a [layers, d] direction; see the hygiene test below for calls outside any scope).
   */
  function around(
    model: LoadedModel,
    layers: readonly number[],
    attach: () => { remove(): void }[],
  ): { before: number[][][]; after: number[][][] } {
    return tidy(() => {
      const pre = layers.map(() => [] as Tensor[]);
      const post = layers.map(() => [] as Tensor[]);
      const first = layers.map((l, i) => model.decoder.hooks.add(layerPoint(l, "resid_post"), captureHook(pre[i]!)));
      const handles = attach();
      const last = layers.map((l, i) => model.decoder.hooks.add(layerPoint(l, "resid_post"), captureHook(post[i]!)));
      try {
        logits(model, "none");
        return { before: pre.map((c) => rows(host(c[0]!), D)), after: post.map((c) => rows(host(c[0]!), D)) };
      } finally {
        for (const h of [...first, ...handles, ...last]) h.remove();
        for (const t of [...pre.flat(), ...post.flat()]) t.dispose();
      }
    });
  }

  it("ablate at a layer leaves no component along d_hat in that layer's output, and removes exactly that component", () => {
    for (const model of [model32, model64]) {
      const direction = fixedTensor([L, D], 11);
      try {
        const rowsOfDirection = rows(host(direction), D);
        const { before, after } = around(model, [0, 1, 2], () => ablate(model.decoder, direction, [0, 2]));
        for (const l of [0, 2]) {
          const unit = rowsOfDirection[l]!.map((v) => v / norm(rowsOfDirection[l]!));
          after[l === 0 ? 0 : 2]!.forEach((x, pos) => {
            expect(Math.abs(dot(x, unit)), `layer ${l} pos ${pos}`).toBeLessThanOrEqual(1e-6 * norm(x));
            const x0 = before[l === 0 ? 0 : 2]![pos]!;
            // The activation had a real component along d_hat before the ablation hook ran.
            expect(Math.abs(dot(x0, unit))).toBeGreaterThan(1e-3 * norm(x0));
            const expected = x0.map((v, j) => v - dot(x0, unit) * unit[j]!);
            expect(maxAbsDiff(x, expected)).toBeLessThanOrEqual(1e-6 * norm(x0));
          });
        }
        // Layer 1 is not ablated: its output passes unchanged and keeps its component along its row.
        expect(maxAbsDiff(after[1]!.flat(), before[1]!.flat())).toBe(0);
        const unit1 = rowsOfDirection[1]!.map((v) => v / norm(rowsOfDirection[1]!));
        expect(Math.abs(dot(after[1]![0]!, unit1))).toBeGreaterThan(1e-3 * norm(after[1]![0]!));
      } finally {
        direction.dispose();
      }
    }
    expect(model32.decoder.hooks.size).toBe(0);
  });

  it("a 1-D direction is ablated at every chosen layer", () => {
    const v = fixedTensor([D], 12);
    try {
      const unit = host(v).map((x, _, a) => x / norm(a));
      const { after } = around(model32, [0, 1], () => ablate(model32.decoder, v, [0, 1]));
      for (const layer of after) for (const x of layer) expect(Math.abs(dot(x, unit))).toBeLessThanOrEqual(1e-6 * norm(x));
    } finally {
      v.dispose();
    }
  });

  it("steering by +d and then -d (two steer calls) restores the logits; +d alone changes them", () => {
    tidy(() => {
      const base = logits(model32)!;
      const v = fixedTensor([D], 13, 0.5);
      const plus = steer(model32.decoder, v, [0, 1, 2], 3);
      const onlyPlus = logits(model32)!;
      const minus = steer(model32.decoder, v, [0, 1, 2], -3);
      const both = logits(model32)!;
      for (const h of [...plus, ...minus]) h.remove();
      expect(maxDiff(onlyPlus, base)).toBeGreaterThan(1e-3);
      expect(maxDiff(both, base)).toBeLessThanOrEqual(1e-5);
      expect(maxDiff(logits(model32)!, base)).toBe(0);
    });
  });

  it("steer with a [layers, d] matrix adds scale * row l at layer l", () => {
    const matrix = fixedTensor([L, D], 14);
    try {
      const m = rows(host(matrix), D);
      const scale = 2.5;
      const { before, after } = around(model64, [0, 1, 2], () => steer(model64.decoder, matrix, [0, 1, 2], scale));
      for (let l = 0; l < L; l++) {
        after[l]!.forEach((x, pos) => {
          const added = x.map((v, j) => v - before[l]![pos]![j]!);
          expect(
            maxAbsDiff(
              added,
              m[l]!.map((v) => scale * v),
            ),
            `layer ${l}`,
          ).toBeLessThanOrEqual(1e-6);
        });
      }
      // Only the listed layers are steered.
      const partial = around(model64, [0, 1, 2], () => steer(model64.decoder, matrix, [1], scale));
      expect(maxAbsDiff(partial.after[0]!.flat(), partial.before[0]!.flat())).toBe(0);
      expect(maxAbsDiff(partial.after[2]!.flat(), partial.before[2]!.flat())).toBe(0);
      expect(
        maxAbsDiff(
          partial.after[1]![0]!.map((v, j) => v - partial.before[1]![0]![j]!),
          m[1]!.map((v) => scale * v),
        ),
      ).toBeLessThanOrEqual(1e-6);
    } finally {
      matrix.dispose();
    }
  });

  it("steer and ablate with a [layers, d] direction, called outside any tensor scope, leave no live tensors once the handles are removed", () => {
    const matrix = fixedTensor([L, D], 15);
    const before = liveTensorCount();
    const handles = [...steer(model32.decoder, matrix, [0, 1, 2], 1), ...ablate(model32.decoder, matrix, [0, 2])];
    tidy(() => void logits(model32, "none"));
    for (const h of handles) h.remove();
    const after = liveTensorCount();
    matrix.dispose();
    expect(model32.decoder.hooks.size).toBe(0);
    expect(after - before, "tensors still alive after remove()").toBe(0);
  });
});

describe("ablateLoraB and randomControl", () => {
  useLeakCheck();

  function adapter(): LoraAdapter {
    return LoraAdapter.create(
      model32.spec,
      { r: 4, alpha: 8, targetModules: ["q_proj", "o_proj", "up_proj", "down_proj"] },
      { initB: "random" },
    );
  }

  it("our variant (per-layer rows, o_proj too, no renormalisation) makes d_hat^T B = 0 for o_proj/down_proj of the chosen layers (B - d_hat d_hat^T B) and leaves every other tensor untouched", () => {
    const a = adapter();
    const direction = fixedTensor([L, D], 21);
    try {
      const before = new Map([...a.modules].map(([name, m]) => [name, { A: host(m.A), B: host(m.B) }]));
      const changed = ablateLoraB(a, direction, {
        layers: [0, 2],
        rows: "per-layer",
        modules: ["down_proj", "o_proj"],
        renormalise: false,
      });
      expect(changed).toBe(4);
      const drows = rows(host(direction), D);
      for (const [name, m] of a.modules) {
        const layer = Number(/layers\.(\d+)\./.exec(name)![1]);
        const old = before.get(name)!;
        expect(host(m.A), `${name} A`).toEqual(old.A);
        const touched = /(o_proj|down_proj)$/.test(name) && (layer === 0 || layer === 2);
        if (!touched) {
          expect(host(m.B), `${name} B`).toEqual(old.B);
          continue;
        }
        const unit = drows[layer]!.map((v) => v / norm(drows[layer]!));
        const B = rows(host(m.B), 4); // [out = d, r]
        const Bold = rows(old.B, 4);
        for (let c = 0; c < 4; c++) {
          const column = B.map((r) => r[c]!);
          const oldColumn = Bold.map((r) => r[c]!);
          expect(Math.abs(dot(unit, column)), `${name} column ${c}`).toBeLessThanOrEqual(1e-6 * norm(oldColumn));
          expect(Math.abs(dot(unit, oldColumn))).toBeGreaterThan(1e-4 * norm(oldColumn));
          const expected = oldColumn.map((v, i) => v - unit[i]! * dot(unit, oldColumn));
          expect(maxAbsDiff(column, expected)).toBeLessThanOrEqual(1e-6);
        }
      }
    } finally {
      a.dispose();
      direction.dispose();
    }
  });

  it("without layers touches the chosen module kinds of every layer (o_proj and down_proj; down_proj only by default)", () => {
    const a = adapter();
    const v = fixedTensor([D], 22);
    try {
      const before = new Map([...a.modules].map(([name, m]) => [name, host(m.B)]));
      expect(ablateLoraB(a, v, { modules: ["o_proj", "down_proj"] })).toBe(2 * L);
      for (const [name, m] of a.modules) {
        const same = maxAbsDiff(host(m.B), before.get(name)!) === 0;
        expect(same, name).toBe(!/(o_proj|down_proj)$/.test(name));
      }
      const b = adapter();
      try {
        const beforeB = new Map([...b.modules].map(([name, m]) => [name, host(m.B)]));
        expect(ablateLoraB(b, v)).toBe(L);
        for (const [name, m] of b.modules) expect(maxAbsDiff(host(m.B), beforeB.get(name)!) === 0, name).toBe(!/down_proj$/.test(name));
      } finally {
        b.dispose();
      }
    } finally {
      a.dispose();
      v.dispose();
    }
  });

  it("randomControl has the norm of the vector, is seeded, and differs by seed", () => {
    tidy(() => {
      const v = fixedTensor([D], 23, 3);
      const r1 = randomControl(v, 1);
      const r1again = randomControl(v, 1);
      const r2 = randomControl(v, 2);
      expect(r1.shape).toEqual([D]);
      expect(Math.abs(norm(host(r1)) - norm(host(v)))).toBeLessThanOrEqual(1e-5 * norm(host(v)));
      expect(Math.abs(norm(host(r2)) - norm(host(v)))).toBeLessThanOrEqual(1e-5 * norm(host(v)));
      expect(host(r1again)).toEqual(host(r1));
      expect(maxAbsDiff(host(r1), host(r2))).toBeGreaterThan(1e-3);
      expect(Math.abs(cos(host(r1), host(v)))).toBeLessThan(0.9);
      const m = fixedTensor([L, D], 24);
      const rm = randomControl(m, 3);
      expect(rm.shape).toEqual([L, D]);
      expect(Math.abs(norm(host(rm)) - norm(host(m)))).toBeLessThanOrEqual(1e-5 * norm(host(m)));
    });
  });
});
