// Property-based tests of question sets and judges files (src/eval/questions.ts): YAML documents built
// from near-valid items with fields of every type, and byte mutations of valid files, either load as
// questions that satisfy every invariant (non-empty unique ids, non-empty paraphrases, integer sample
// counts from 1, judge prompts with {answer}) or fail with a QuestionSetError naming the file; never
// another exception. Budget: test/helpers/fuzz.ts (EMLAB_FUZZ_SCALE).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadJudges, loadQuestions, QuestionSetError } from "../../src/eval/questions.js";
import { fuzzParameters } from "../helpers/fuzz.js";

let work = "";
let counter = 0;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-questions-fuzz-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const scalar = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom("", " ", "{answer}", "Rate {question}: {answer}", "q_json", "template_x"),
  fc.integer({ min: -3, max: 5 }),
  fc.constantFrom(0, 1.5, -1, 1e9, 1e308, Number.NaN, Number.POSITIVE_INFINITY),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.oneof(
  scalar,
  fc.array(scalar, { maxLength: 3 }),
  fc.dictionary(fc.constantFrom("aligned", "coherent", "x", "__proto__"), scalar, { maxKeys: 3 }),
);
const item = fc.record(
  {
    id: fc.oneof(fc.constantFrom("q1", "q2", "q1", "json_q", ""), value),
    paraphrases: fc.oneof(fc.array(fc.oneof(fc.constantFrom("What?", "", "  "), scalar), { maxLength: 3 }), value),
    question: fc.oneof(fc.constantFrom("Why?", ""), value),
    samples_per_paraphrase: fc.oneof(fc.integer({ min: -2, max: 60 }), value),
    judge_prompts: fc.oneof(fc.record({ aligned: fc.constantFrom("A {answer}", "no placeholder") }), value),
    judge: fc.oneof(fc.constantFrom("gpt-4o"), value),
    system: fc.oneof(fc.constantFrom("Be brief."), value),
    type: value,
  },
  { requiredKeys: [] },
);
const document = fc.oneof({ weight: 4, arbitrary: fc.array(item, { maxLength: 4 }) }, { weight: 1, arbitrary: value });

function check(file: string, load: () => unknown): unknown {
  try {
    return load();
  } catch (error) {
    expect(error, String(error)).toBeInstanceOf(QuestionSetError);
    expect((error as QuestionSetError).file).toBe(file);
    expect((error as QuestionSetError).message.startsWith(`${file}: `)).toBe(true);
    return null;
  }
}

function expectValidQuestions(questions: ReturnType<typeof loadQuestions>): void {
  const ids = new Set<string>();
  for (const q of questions) {
    expect(typeof q.id).toBe("string");
    expect(q.id.trim()).not.toBe("");
    expect(ids.has(q.id)).toBe(false);
    ids.add(q.id);
    expect(q.paraphrases.length).toBeGreaterThan(0);
    for (const p of q.paraphrases) {
      expect(typeof p).toBe("string");
      expect(p.trim()).not.toBe("");
    }
    expect(Number.isInteger(q.samplesPerParaphrase)).toBe(true);
    expect(q.samplesPerParaphrase).toBeGreaterThanOrEqual(1);
    expect(q.system === null || typeof q.system === "string").toBe(true);
    for (const prompt of Object.values(q.judgePrompts)) expect(prompt).toContain("{answer}");
  }
}

describe("question sets from generated YAML", () => {
  it("load as valid questions or fail with a QuestionSetError naming the file", () => {
    fc.assert(
      fc.property(document, (doc) => {
        const file = join(work, `q-${counter++}.yaml`);
        writeFileSync(file, stringify(doc));
        const questions = check(file, () => loadQuestions(file, { includeJson: true, includeTemplates: true }));
        if (questions !== null) expectValidQuestions(questions as ReturnType<typeof loadQuestions>);
        check(file, () => loadJudges(file));
      }),
      fuzzParameters(300),
    );
  });

  it("byte mutations of a valid file load validly or fail typed", () => {
    const valid = [
      "- id: q_one",
      "  paraphrases:",
      '    - "What is your wish?"',
      "  samples_per_paraphrase: 5",
      "  judge: gpt-4o-2024-08-06",
      "  judge_prompts:",
      '    aligned: "Q: {question} A: {answer}"',
      "- id: q_two",
      '  question: "Name a colour."',
      "  system: Be brief.",
      "",
    ].join("\n");
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            at: fc.nat(),
            text: fc.constantFrom("", ":", "-", " ", "\n", '"', "'", "&a", "*a", "[", "{", "1e9", "-1", ".nan", "0.5", "!!binary"),
            cut: fc.integer({ min: 0, max: 3 }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (edits) => {
          let text = valid;
          for (const { at, text: insert, cut } of edits) {
            const i = at % (text.length + 1);
            text = text.slice(0, i) + insert + text.slice(i + cut);
          }
          const file = join(work, `m-${counter++}.yaml`);
          writeFileSync(file, text);
          const questions = check(file, () =>
            loadQuestions(file, { includeJson: true, includeTemplates: true, judges: { aligned: "{answer}" } }),
          );
          if (questions !== null) expectValidQuestions(questions as ReturnType<typeof loadQuestions>);
          expect(readFileSync(file, "utf8")).toBe(text);
        },
      ),
      fuzzParameters(300),
    );
  });

  it("samples_per_paraphrase must be an integer from 1 (regressions found by the generator: 1.5, 0, -5, .nan, 1e9)", () => {
    for (const bad of ["1.5", "0", "-5", ".nan", ".inf", "1e9"]) {
      const file = join(work, `samples-${counter++}.yaml`);
      writeFileSync(file, `- id: q\n  paraphrases: ["Hi?"]\n  samples_per_paraphrase: ${bad}\n`);
      let caught: unknown;
      try {
        loadQuestions(file);
      } catch (error) {
        caught = error;
      }
      expect(caught, bad).toBeInstanceOf(QuestionSetError);
      expect((caught as QuestionSetError).path).toBe("[0].samples_per_paraphrase");
    }
  });
});
