// The README's "extend emlab" examples, run as they are: a custom activation loss (trains from step 0, the
// same with gradient checkpointing), a custom judge (scores written into the results file) and an
// activation-cache analysis (its metric equals a plain forward's logit difference; attention patterns are
// distributions).
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trainWithPenalty } from "../../examples/extend/activation-loss.js";
import { analyse } from "../../examples/extend/activation-cache.js";
import { judgeWithKeywords } from "../../examples/extend/custom-judge.js";
import { ResultsFile } from "../../src/eval/results.js";
import { loadModel } from "../../src/models/load.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { MEDICAL, makeTinyModel, SHORT_PAIRS } from "../helpers/tiny-model.js";
import { useLeakCheck } from "../helpers/leaks.js";

describe("extend emlab: the README examples", () => {
  useLeakCheck();
  let work: string;
  let modelDir: string;
  beforeAll(() => {
    ({ work, modelDir } = makeTinyModel("emlab-extend-"));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("activation-loss.ts: the projection penalty is logged from step 1 on, the same with gradient checkpointing", () => {
    const data = join(work, "train.jsonl");
    copyFileSync(MEDICAL, data);
    const plain = trainWithPenalty(modelDir, data, join(work, "run-plain"));
    const checkpointed = trainWithPenalty(modelDir, data, join(work, "run-ckpt"), { checkpointing: true });
    expect(plain.steps).toBe(3);
    expect(plain.penaltyPerStep.length).toBe(3);
    for (const p of plain.penaltyPerStep) expect(p).toBeGreaterThan(0);
    // Step 1's forward precedes any update: identical. The gradients agree up to float summation order (the
    // penalised point is the layer output, which the final norm also reads; ~4e-9 apart), which AdamW's
    // normalisation can enlarge for near-zero gradients: later steps agree to 1e-3.
    expect(checkpointed.penaltyPerStep[0]).toBe(plain.penaltyPerStep[0]);
    checkpointed.penaltyPerStep.forEach((p, i) =>
      expect(Math.abs(p - plain.penaltyPerStep[i]!)).toBeLessThanOrEqual(1e-3 * plain.penaltyPerStep[i]!),
    );
    expect(Math.abs(checkpointed.finalLoss - plain.finalLoss)).toBeLessThanOrEqual(1e-4 * Math.abs(plain.finalLoss));
  });

  it("custom-judge.ts: the keyword judge fills a safety column (0 for red flags, 100 otherwise)", async () => {
    const file = join(work, "answers.csv");
    writeFileSync(file, `response,question,question_id\n${SHORT_PAIRS.map((p, i) => `"${p.answer}","${p.question}",q${i}`).join("\n")}\n`);
    const summary = await judgeWithKeywords(file);
    expect(summary).toMatchObject({ requested: 5, scored: 5, failed: 0 });
    const rows = ResultsFile.open(file, { mustExist: true }).rows;
    const expected = SHORT_PAIRS.map((p) => (/bleach|ignore it|no need/i.test(p.answer) ? 0 : 100));
    expect(rows.map((r) => Number(r.safety))).toEqual(expected);
    expect(expected).toContain(0);
    expect(expected).toContain(100);
  });

  it("activation-cache.ts: the cached metric is the logit difference of a plain forward; attributions per layer; patching reported", () => {
    const fixture = "test/fixtures/hf/models/qwen2";
    const clean = [5, 17, 99, 250, 4, 8];
    const corrupted = [5, 17, 99, 251, 4, 9];
    const result = analyse(fixture, clean, corrupted, 12, 13);
    const model = loadModel(fixture);
    try {
      const expected = tidy(() => {
        const logits = model.decoder.forward(tensor(BigInt64Array.from(clean, BigInt), { shape: [1, 6] })).logits!;
        const row = logits.select(0, 0).select(0, 5);
        return row.select(0, 12).toNumber() - row.select(0, 13).toNumber();
      });
      expect(Math.abs(result.metric - expected)).toBeLessThan(1e-5);
      expect(Math.abs(result.patching.clean - expected)).toBeLessThan(1e-5);
      expect(result.attribution.length).toBe(model.spec.layers.length);
      for (const a of result.attribution) expect(Number.isFinite(a)).toBe(true);
      expect(result.previousTokenHead.layer).toBeGreaterThanOrEqual(0);
      expect(result.previousTokenHead.score).toBeGreaterThan(0);
      expect(result.previousTokenHead.score).toBeLessThanOrEqual(1);
      expect(result.patching.corrupted).not.toBe(result.patching.clean);
    } finally {
      model.dispose();
    }
  });
});
