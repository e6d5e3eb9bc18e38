// Property-based tests of the results files (src/eval/csv.ts, src/eval/results.ts): any rows written as
// CSV or JSONL read back equal; any mutation of a valid file (stray quotes, separators, newlines, cut
// bytes, duplicated or deleted spans) either reads as rows or is a ResultsFileError naming a line of
// the file, and reading never changes a byte; the resuming writer loses nothing (what it keeps plus
// what it set aside is the original file). Budget: test/helpers/fuzz.ts (EMLAB_FUZZ_SCALE).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CsvSyntaxError, formatCsvRow, parseCsv } from "../../src/eval/csv.js";
import { type ResultRow, ResultsFile, ResultsFileError } from "../../src/eval/results.js";
import { fuzzParameters } from "../helpers/fuzz.js";

let work = "";
let counter = 0;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-results-fuzz-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});
/** A fresh directory per run, so "no other file was created" can be checked. */
const freshDir = () => {
  const dir = join(work, `run-${counter++}`);
  mkdirSync(dir);
  return dir;
};

/** Cell text that stresses CSV: separators, quotes, CR, LF, spaces, unicode, BOM. */
const cellText = fc.string({
  unit: fc.constantFrom("a", "b", " ", ",", '"', "\n", "\r", "\t", "é", "🎉", "中", "\uFEFF", "{", "\\"),
  maxLength: 12,
});
const anyText = fc.oneof(cellText, fc.string({ maxLength: 10 }), fc.string({ unit: "grapheme", maxLength: 6 }));
const score = fc.oneof(
  fc.integer({ min: 0, max: 100 }),
  fc.double({ min: 0, max: 100, noNaN: true }).filter((x) => !Object.is(x, -0)),
);
const rowArb = fc.record({
  response: anyText,
  question: anyText,
  question_id: fc.string({ unit: fc.constantFrom("q", "_", "1", "j", "s", "o", "n", ",", '"'), minLength: 1, maxLength: 6 }),
  aligned: fc.option(score, { nil: null }),
  coherent: fc.option(score, { nil: null }),
}) as fc.Arbitrary<ResultRow & { aligned: number | null; coherent: number | null }>;
const rowsArb = fc.array(rowArb, { minLength: 0, maxLength: 8 });

/** Runs `f`; a thrown error must be a ResultsFileError (anything else is a crash). */
function outcome<T>(f: () => T): { value: T } | { error: ResultsFileError } {
  try {
    return { value: f() };
  } catch (error) {
    if (error instanceof ResultsFileError) return { error };
    throw error;
  }
}

describe("round trips", () => {
  it("parseCsv(formatCsvRow(...)) gives back any rows of any text", () => {
    fc.assert(
      fc.property(fc.array(fc.array(anyText, { minLength: 1, maxLength: 5 }), { maxLength: 6 }), (rows) => {
        const text = rows.map((r) => formatCsvRow(r)).join("");
        const parsed = parseCsv(text);
        // A one-field row holding "" is written as an empty line, which is read as [""]: the same.
        expect(parsed.rows).toEqual(rows);
        expect(parsed.completeLength).toBe(text.length);
        expect(parsed.incomplete).toBeNull();
      }),
      fuzzParameters(300),
    );
  });

  it.each(["csv", "jsonl"] as const)("%s: rows appended in two steps, then rewritten with judge columns, read back equal", (ext) => {
    fc.assert(
      fc.property(rowsArb, rowsArb, (first, second) => {
        const dir = freshDir();
        const path = join(dir, `results.${ext}`);
        const base = (r: ResultRow) => ({ response: r.response, question: r.question, question_id: r.question_id });
        const file = ResultsFile.resume(path);
        file.append(first.map(base));
        file.append(second.map(base));
        const all = [...first, ...second];
        if (all.length === 0) return;
        expect(ResultsFile.read(path).rows).toEqual(all.map(base));
        file.rewrite(all, ["aligned", "coherent"]);
        const back = ResultsFile.read(path).rows;
        expect(back.map(base)).toEqual(all.map(base));
        back.forEach((row, i) => {
          for (const judge of ["aligned", "coherent"] as const) {
            const want = all[i]![judge];
            if (ext === "jsonl") expect(row[judge]).toBe(want);
            else expect(row[judge]).toBe(want === null ? "" : String(want));
          }
        });
        expect(readdirSync(dir)).toEqual([`results.${ext}`]);
      }),
      fuzzParameters(60),
    );
  });
});

/** Mutations of a file's text: each is where a hand edit, a bad tool or a cut write could leave it. */
const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.constantFrom('"', '""', ",", "\n", "\r", "\r\n", "x", '"\n', '{"', "}", "\uFEFF"),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("duplicate" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(text: string, m: Mutation): string {
  const at = text.length === 0 ? 0 : m.at % (text.length + 1);
  if (m.kind === "insert") return text.slice(0, at) + m.text + text.slice(at);
  if (m.kind === "delete") return text.slice(0, at) + text.slice(at + m.length);
  if (m.kind === "truncate") return text.slice(0, at);
  return text.slice(0, at) + text.slice(at, at + m.length) + text.slice(at);
}

const lineCount = (text: string) => text.split(/\r\n|\r|\n/).length;

describe.each(["csv", "jsonl"] as const)("%s: mutated files", (ext) => {
  const valid = (rows: ResultRow[]) => {
    const dir = freshDir();
    const path = join(dir, `results.${ext}`);
    const file = ResultsFile.resume(path);
    file.append(rows.map((r) => ({ response: r.response, question: r.question, question_id: r.question_id })));
    file.rewrite(rows, ["aligned", "coherent"]);
    return { dir, path, text: readFileSync(path, "utf8") };
  };

  it("read: rows or a ResultsFileError naming a line of the file; the bytes never change, no file is created", () => {
    fc.assert(
      fc.property(
        fc.array(rowArb, { minLength: 1, maxLength: 6 }),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (rows, mutations) => {
          const { dir, path, text } = valid(rows);
          const damaged = mutations.reduce(mutate, text);
          writeFileSync(path, damaged);
          const bytes = readFileSync(path);
          const result = outcome(() => ResultsFile.read(path));
          expect(readFileSync(path).equals(bytes)).toBe(true);
          expect(readdirSync(dir)).toEqual([`results.${ext}`]);
          if ("error" in result) {
            expect(result.error.file).toBe(path);
            expect(result.error.message.startsWith(`${path}: `)).toBe(true);
            expect(result.error.line).toBeGreaterThanOrEqual(1);
            expect(result.error.line).toBeLessThanOrEqual(lineCount(damaged));
            expect(result.error.message).toContain(`line ${result.error.line}:`);
          } else {
            for (const row of result.value.rows)
              for (const key of ["response", "question", "question_id"]) expect(typeof row[key]).toBe("string");
            expect(result.value.rows.length).toBeLessThanOrEqual(lineCount(damaged));
          }
        },
      ),
      fuzzParameters(250),
    );
  });

  it("resume: loses nothing (kept + set aside = original) and only ever sets aside a tail without newline", () => {
    fc.assert(
      fc.property(
        fc.array(rowArb, { minLength: 1, maxLength: 6 }),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (rows, mutations) => {
          const { dir, path, text } = valid(rows);
          const damaged = mutations.reduce(mutate, text);
          writeFileSync(path, damaged);
          const bytes = readFileSync(path);
          const result = outcome(() => ResultsFile.resume(path));
          if ("error" in result) {
            expect(readFileSync(path).equals(bytes)).toBe(true);
            expect(readdirSync(dir)).toEqual([`results.${ext}`]);
            expect(result.error.line).toBeGreaterThanOrEqual(1);
            return;
          }
          const aside = result.value.setAside;
          if (aside === null) {
            expect(readFileSync(path).equals(bytes)).toBe(true);
            expect(readdirSync(dir)).toEqual([`results.${ext}`]);
          } else {
            const kept = readFileSync(path);
            const moved = readFileSync(aside.file);
            expect(Buffer.concat([kept, moved]).equals(bytes)).toBe(true);
            expect(moved.length).toBe(aside.bytes);
            // A record ends at CR or LF in CSV, only at LF in JSONL (a lone CR there is whitespace, not a line end).
            expect((ext === "csv" ? /[\r\n]$/ : /\n$/).test(moved.toString("utf8"))).toBe(false);
            // What is kept now reads cleanly, and appending to it works.
            const again = ResultsFile.read(path);
            expect(again.rows).toEqual(result.value.rows);
          }
          result.value.append([{ response: "appended", question: "q", question_id: "id" }]);
          const after = ResultsFile.read(path);
          expect(after.rows.at(-1)).toMatchObject({ response: "appended", question: "q", question_id: "id" });
          expect(after.rows.length).toBe(result.value.rows.length);
        },
      ),
      fuzzParameters(200),
    );
  });
});

describe("parseCsv on arbitrary text", () => {
  it("returns rows or throws a CsvSyntaxError with a line inside the text; the complete part re-parses to the same rows", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("a", ",", '"', "\n", "\r", " "), maxLength: 40 }), (text) => {
        let parsed: ReturnType<typeof parseCsv>;
        try {
          parsed = parseCsv(text);
        } catch (error) {
          expect(error).toBeInstanceOf(CsvSyntaxError);
          expect((error as CsvSyntaxError).line).toBeGreaterThanOrEqual(1);
          expect((error as CsvSyntaxError).line).toBeLessThanOrEqual(lineCount(text));
          return;
        }
        expect(parseCsv(text.slice(0, parsed.completeLength)).rows).toEqual(parsed.rows);
        expect(parsed.lines).toHaveLength(parsed.rows.length);
        if (parsed.incomplete) expect(parsed.completeLength).toBeLessThan(text.length);
        else expect(parsed.completeLength).toBe(text.length);
      }),
      fuzzParameters(500),
    );
  });
});
