// Covers src/eval/csv.ts (formatCsvField/formatCsvRow/parseCsv: quoting, round trips, incomplete final records)
// and src/eval/results.ts (ResultsFile CSV/JSONL create, append, reopen, repair of cut-off writes, files written
// elsewhere without a final newline, atomic rewrite with new columns, ResultsFileError) and scoreOf.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CsvSyntaxError, formatCsvField, formatCsvRow, parseCsv } from "../../src/eval/csv.js";
import { type ResultRow, ResultsFile, ResultsFileError, scoreOf } from "../../src/eval/results.js";

let work = "";
let counter = 0;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-csv-results-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});
const fresh = (ext: "csv" | "jsonl") => join(work, `results-${counter++}.${ext}`);
const read = (path: string) => readFileSync(path, "utf8");

/** Runs `f`, expecting a ResultsFileError; returns it. */
function resultsFileError(f: () => unknown): ResultsFileError {
  let caught: unknown;
  try {
    f();
  } catch (error) {
    caught = error;
  }
  expect(caught, "expected a ResultsFileError").toBeInstanceOf(ResultsFileError);
  return caught as ResultsFileError;
}

/** Independent RFC 4180 quoting (always quotes), to build files by hand. */
const q = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Awkward cell values: separators, quotes, newlines, CRLF, spaces, empty, unicode. */
const AWKWARD = [
  "plain",
  "a,b",
  'say "hi"',
  '"',
  '""',
  "line1\nline2",
  "crlf\r\nend",
  "lone\rcr",
  "  leading",
  "trailing  ",
  " ",
  "",
  "ünïcødé 🎉 中文, «quoted»",
  "$& {answer} \\n",
];

// ---- csv.ts ----------------------------------------------------------------------------------------

describe("formatCsvField / formatCsvRow", () => {
  it("quotes only what needs quoting, doubling quotes", () => {
    expect(formatCsvField("plain")).toBe("plain");
    expect(formatCsvField("a,b")).toBe('"a,b"');
    expect(formatCsvField('say "hi"')).toBe('"say ""hi"""');
    expect(formatCsvField("x\ny")).toBe('"x\ny"');
    expect(formatCsvField("x\ry")).toBe('"x\ry"');
    expect(formatCsvField(" x")).toBe('" x"');
    expect(formatCsvField("x ")).toBe('"x "');
    expect(formatCsvField("")).toBe("");
    expect(formatCsvField("中文")).toBe("中文");
  });

  it("numbers are written plainly; null, undefined and non-finite numbers are empty", () => {
    expect(formatCsvRow([1.5, -2, 0, null, undefined, Number.NaN, Number.POSITIVE_INFINITY, "z"])).toBe("1.5,-2,0,,,,,z\n");
    expect(formatCsvField(72.46566354740904)).toBe("72.46566354740904");
  });
});

describe("parseCsv", () => {
  it("round-trips rows of awkward values written by formatCsvRow", () => {
    const rows = [AWKWARD, [...AWKWARD].reverse(), AWKWARD.map((v, i) => `${i}:${v}`), ["", "", ""], ["only"]];
    const text = rows.map((r) => formatCsvRow(r)).join("");
    const parsed = parseCsv(text);
    expect(parsed.rows).toEqual(rows);
    expect(parsed.completeLength).toBe(text.length);
  });

  it("parses hand-written RFC 4180 text: quoted separators, doubled quotes, embedded newlines", () => {
    const text = `a,${q('b "c", d')},${q("e\nf")}\n,,\n${q("")},x\n`;
    expect(parseCsv(text).rows).toEqual([
      ["a", 'b "c", d', "e\nf"],
      ["", "", ""],
      ["", "x"],
    ]);
  });

  it("accepts CRLF and lone CR as record ends; CRLF inside quotes is data", () => {
    const text = `a,b\r\n${q("x\r\ny")},c\r\nd,e\rf,g\r\n`;
    const parsed = parseCsv(text);
    expect(parsed.rows).toEqual([
      ["a", "b"],
      ["x\r\ny", "c"],
      ["d", "e"],
      ["f", "g"],
    ]);
    expect(parsed.completeLength).toBe(text.length);
  });

  it("an unterminated quoted final record is never returned, with or without acceptUnterminated", () => {
    const complete = "h1,h2\na,b\n";
    const text = `${complete}c,"open quote, with\nnewline`;
    for (const options of [{}, { acceptUnterminated: true }]) {
      const parsed = parseCsv(text, options);
      expect(parsed.rows).toEqual([
        ["h1", "h2"],
        ["a", "b"],
      ]);
      expect(parsed.completeLength).toBe(complete.length);
    }
  });

  it("a complete final record without newline is returned only with acceptUnterminated", () => {
    const complete = "h1,h2\na,b\n";
    const text = `${complete}c,${q('d,"e"')}`;
    const strict = parseCsv(text);
    expect(strict.rows).toEqual([
      ["h1", "h2"],
      ["a", "b"],
    ]);
    expect(strict.completeLength).toBe(complete.length);
    const loose = parseCsv(text, { acceptUnterminated: true });
    expect(loose.rows).toEqual([
      ["h1", "h2"],
      ["a", "b"],
      ["c", 'd,"e"'],
    ]);
    expect(loose.completeLength).toBe(text.length);
  });

  it("acceptUnterminated adds no phantom record after a final newline, and none for empty text", () => {
    expect(parseCsv("a,b\n", { acceptUnterminated: true }).rows).toEqual([["a", "b"]]);
    expect(parseCsv("", { acceptUnterminated: true })).toEqual({ rows: [], lines: [], completeLength: 0, incomplete: null });
    expect(parseCsv("")).toEqual({ rows: [], lines: [], completeLength: 0, incomplete: null });
  });

  it("completeLength counts characters (not bytes) of complete records with unicode", () => {
    const complete = "ü🎉,中\n";
    const parsed = parseCsv(`${complete}"cut`);
    expect(parsed.completeLength).toBe(complete.length);
    expect(parsed.rows).toEqual([["ü🎉", "中"]]);
  });
});

// ---- ResultsFile: CSV ------------------------------------------------------------------------------

const row = (i: number, extra: Record<string, unknown> = {}): ResultRow => ({
  response: `${AWKWARD[i % AWKWARD.length]} #${i}`,
  question: `Q${i}, "quoted"\nsecond line`,
  question_id: `id_${i % 3}`,
  ...extra,
});

describe("ResultsFile (CSV)", () => {
  it("a new file has the base columns and no rows; nothing is written until an append", () => {
    const path = fresh("csv");
    const file = ResultsFile.resume(path);
    expect(file.format).toBe("csv");
    expect(file.rows).toEqual([]);
    expect(file.columns).toEqual(["response", "question", "question_id"]);
    expect(file.setAside).toBeNull();
    file.append([]);
    expect(readdirSync(work)).not.toContain(path.split("/").pop());
  });

  it("append writes a header and quoted rows; the bytes are exactly RFC 4180", () => {
    const path = fresh("csv");
    ResultsFile.resume(path).append([{ response: 'hi, "you"', question: "q\nx", question_id: "id1" }]);
    expect(read(path)).toBe(`response,question,question_id\n${q('hi, "you"')},${q("q\nx")},id1\n`);
  });

  it("create, append twice, reopen: rows and columns preserved", () => {
    const path = fresh("csv");
    const first = [row(0), row(1), row(2)];
    const second = AWKWARD.map((_, i) => row(i + 3));
    const file = ResultsFile.resume(path);
    file.append(first);
    file.append(second);
    expect(file.rows).toEqual([...first, ...second]);
    const again = ResultsFile.resume(path);
    expect(again.setAside).toBeNull();
    expect(again.columns).toEqual(["response", "question", "question_id"]);
    expect(again.rows).toEqual([...first, ...second]);
  });

  it("rewrite adds judge columns after the existing ones; reopened scores come back as text; later appends keep them", () => {
    const path = fresh("csv");
    const file = ResultsFile.resume(path);
    const base = [row(0), row(1)];
    file.append(base);
    const inodeBefore = statSync(path).ino;
    const judged = base.map((r, i) => ({ ...r, aligned: 10 + i, coherent: 90.5 - i }));
    file.rewrite(judged, ["aligned", "coherent", "aligned"]);
    expect(file.columns).toEqual(["response", "question", "question_id", "aligned", "coherent"]);
    // Atomic replacement (temporary file + rename): a new inode, and no temporary left behind.
    expect(statSync(path).ino).not.toBe(inodeBefore);
    expect(readdirSync(work).filter((f) => f.includes(".tmp-"))).toEqual([]);
    const lines = read(path).split("\n");
    expect(lines[0]).toBe("response,question,question_id,aligned,coherent");
    const reopened = ResultsFile.resume(path);
    expect(reopened.columns).toEqual(["response", "question", "question_id", "aligned", "coherent"]);
    expect(reopened.rows).toEqual(judged.map((r) => ({ ...r, aligned: String(r.aligned), coherent: String(r.coherent) })));
    reopened.append([row(5, { coherent: 1, aligned: 2 })]);
    const third = ResultsFile.resume(path);
    expect(third.rows).toHaveLength(3);
    expect(third.rows[2]).toEqual({ ...row(5), aligned: "2", coherent: "1" });
    // A row missing a column is written as an empty cell.
    third.append([row(6)]);
    expect(ResultsFile.resume(path).rows[3]).toEqual({ ...row(6), aligned: "", coherent: "" });
  });

  it("rewrite keeps an existing column's position and does not duplicate it", () => {
    const path = fresh("csv");
    writeFileSync(path, "question_id,aligned,response,question\nx,5,r,q\n");
    const file = ResultsFile.resume(path);
    expect(file.columns).toEqual(["question_id", "aligned", "response", "question"]);
    file.rewrite(
      file.rows.map((r) => ({ ...r, coherent: 70 })),
      ["coherent", "aligned"],
    );
    expect(read(path)).toBe("question_id,aligned,response,question,coherent\nx,5,r,q,70\n");
  });

  it("a last record cut inside a quoted field: read refuses it naming the line and leaves the bytes; resume moves the tail aside, then appends work", () => {
    const path = fresh("csv");
    const good = `response,question,question_id,aligned\n${q("ünï, 🎉\n")},q1,a,1\nplain,${q('中"文')},b,2\n`;
    const tail = `"cut off mid-answer 🎉 with, comma\nand ""more""`;
    writeFileSync(path, `${good}${tail}`);
    const e = resultsFileError(() => ResultsFile.read(path));
    expect(e.line).toBe(5); // header, a 2-line record, plain, then the cut record
    expect(read(path)).toBe(`${good}${tail}`);
    const file = ResultsFile.resume(path);
    expect(file.setAside).not.toBeNull();
    expect(file.setAside!.line).toBe(5);
    expect(file.setAside!.bytes).toBe(Buffer.byteLength(tail));
    expect(file.setAside!.file.startsWith(`${path}.damaged-`)).toBe(true);
    expect(read(file.setAside!.file)).toBe(tail);
    expect(file.rows).toEqual([
      { response: "ünï, 🎉\n", question: "q1", question_id: "a", aligned: "1" },
      { response: "plain", question: '中"文', question_id: "b", aligned: "2" },
    ]);
    expect(statSync(path).size).toBe(Buffer.byteLength(good));
    expect(read(path)).toBe(good);
    file.append([{ response: "new", question: "q3", question_id: "c", aligned: 3 }]);
    expect(read(path)).toBe(`${good}new,q3,c,3\n`);
    const reopened = ResultsFile.resume(path);
    expect(reopened.setAside).toBeNull();
    expect(reopened.rows.map((r) => r.response)).toEqual(["ünï, 🎉\n", "plain", "new"]);
  });

  it("a last record cut between fields (too few fields, no newline) is truncated too", () => {
    const path = fresh("csv");
    const good = "response,question,question_id,aligned\nr1,q1,a,1\n";
    writeFileSync(path, `${good}r2,${q("q2")}`);
    expect(resultsFileError(() => ResultsFile.read(path)).line).toBe(3);
    const file = ResultsFile.resume(path);
    expect(file.setAside!.line).toBe(3);
    expect(read(file.setAside!.file)).toBe(`r2,${q("q2")}`);
    expect(file.rows).toHaveLength(1);
    expect(read(path)).toBe(good);
  });

  it("a last record without newline whose last field is unquoted: read keeps it; resume sets it aside (it may be cut inside that field)", () => {
    const path = fresh("csv");
    const good = "response,question,question_id,aligned\nr1,q1,a,1\n";
    writeFileSync(path, `${good}r2,q2,b,2`); // "2" may be what is left of "25"
    expect(ResultsFile.read(path).rows.map((r) => r.aligned)).toEqual(["1", "2"]);
    expect(read(path)).toBe(`${good}r2,q2,b,2`);
    const file = ResultsFile.resume(path);
    expect(file.setAside!.line).toBe(3);
    expect(read(file.setAside!.file)).toBe("r2,q2,b,2");
    expect(read(path)).toBe(good);
  });

  it("a complete last record without trailing newline, last field quoted (verifiably whole), is kept; the next append starts on a new line", () => {
    const path = fresh("csv");
    const text = `response,question,question_id,aligned\nr1,q1,a,1\n${q("r2, last")},q2,b,${q("2")}`;
    writeFileSync(path, text);
    const file = ResultsFile.resume(path);
    expect(file.setAside).toBeNull();
    expect(file.rows.map((r) => [r.response, r.aligned])).toEqual([
      ["r1", "1"],
      ["r2, last", "2"],
    ]);
    expect(read(path)).toBe(text);
    file.append([{ response: "r3", question: "q3", question_id: "c", aligned: 3 }]);
    expect(read(path)).toBe(`${text}\nr3,q3,c,3\n`);
    const reopened = ResultsFile.resume(path);
    expect(reopened.rows.map((r) => r.response)).toEqual(["r1", "r2, last", "r3"]);
    // A second append needs no extra newline.
    reopened.append([{ response: "r4", question: "q4", question_id: "d", aligned: 4 }]);
    expect(read(path)).toBe(`${text}\nr3,q3,c,3\nr4,q4,d,4\n`);
  });

  it("CRLF files with a BOM and blank lines (written elsewhere) open; appends add LF records", () => {
    const path = fresh("csv");
    const text = "\uFEFFresponse,question,question_id\r\nr1,q1,a\r\n\r\nr2,q2,b\r\n";
    writeFileSync(path, text);
    const file = ResultsFile.resume(path);
    expect(file.columns).toEqual(["response", "question", "question_id"]);
    expect(file.rows).toEqual([
      { response: "r1", question: "q1", question_id: "a" },
      { response: "r2", question: "q2", question_id: "b" },
    ]);
    file.append([{ response: "r3", question: "q3", question_id: "c" }]);
    expect(read(path)).toBe(`${text}r3,q3,c\n`);
    expect(ResultsFile.resume(path).rows).toHaveLength(3);
  });

  it("a header-only file without trailing newline: the first append starts on a new line", () => {
    const path = fresh("csv");
    writeFileSync(path, "response,question,question_id");
    const file = ResultsFile.resume(path);
    expect(file.rows).toEqual([]);
    file.append([{ response: "r", question: "q", question_id: "id" }]);
    expect(read(path)).toBe("response,question,question_id\nr,q,id\n");
  });

  it("an existing empty file gets its header on the first append", () => {
    const path = fresh("csv");
    writeFileSync(path, "");
    const file = ResultsFile.resume(path);
    expect(file.rows).toEqual([]);
    expect(file.columns).toEqual(["response", "question", "question_id"]);
    file.append([{ response: "r", question: "q", question_id: "id" }]);
    expect(read(path)).toBe("response,question,question_id\nr,q,id\n");
    expect(ResultsFile.resume(path).rows).toEqual([{ response: "r", question: "q", question_id: "id" }]);
  });

  it("missing base column: ResultsFileError at line 1 naming the file and column", () => {
    const path = fresh("csv");
    writeFileSync(path, "question,question_id,aligned\nq,a,1\n");
    const e = resultsFileError(() => ResultsFile.read(path));
    expect(e.file).toBe(path);
    expect(e.line).toBe(1);
    expect(e.message).toContain(path);
    expect(e.message).toContain("response");
  });

  it("wrong field count: ResultsFileError naming the file and the record's line", () => {
    const path = fresh("csv");
    writeFileSync(path, "response,question,question_id\nr1,q1,a\nr2,q2\nr3,q3,c\n");
    const e = resultsFileError(() => ResultsFile.read(path));
    expect(e.file).toBe(path);
    expect(e.line).toBe(3);
    expect(e.message).toContain(path);
    const more = fresh("csv");
    writeFileSync(more, "response,question,question_id\nr1,q1,a\nr2,q2,b\nr3,q3,c,extra\n");
    expect(resultsFileError(() => ResultsFile.read(more)).line).toBe(4);
  });
});

// ---- ResultsFile: JSONL ----------------------------------------------------------------------------

describe("ResultsFile (JSONL)", () => {
  it("create, append, reopen: values keep their JSON types; _raw/_error fields are not columns", () => {
    const path = fresh("jsonl");
    const file = ResultsFile.resume(path);
    expect(file.format).toBe("jsonl");
    const rows = [
      row(0, { aligned: 12.5, coherent: 88, aligned_raw: { "10": 0.5, "20": 0.5 }, coherent_error: null }),
      row(1, { aligned: null, coherent: 3, aligned_error: "REFUSAL" }),
      row(2, { medical: 0 }),
    ];
    file.append(rows.slice(0, 2));
    file.append(rows.slice(2));
    const lines = read(path).split("\n");
    expect(lines.at(-1)).toBe("");
    expect(lines.slice(0, -1).map((l) => JSON.parse(l))).toEqual(rows);
    const again = ResultsFile.resume(path);
    expect(again.setAside).toBeNull();
    expect(again.rows).toEqual(rows);
    expect(again.columns).toEqual(["response", "question", "question_id", "aligned", "coherent", "medical"]);
  });

  it("a partial last line (interrupted append): read refuses it; resume moves it aside; appends then work", () => {
    const path = fresh("jsonl");
    const good = `${JSON.stringify(row(0, { aligned: 1 }))}\n${JSON.stringify({ response: "ü🎉", question: "中", question_id: "x" })}\n`;
    writeFileSync(path, `${good}{"response":"partial 🎉","quest`);
    expect(resultsFileError(() => ResultsFile.read(path)).line).toBe(3);
    expect(statSync(path).size).toBe(Buffer.byteLength(`${good}{"response":"partial 🎉","quest`));
    const file = ResultsFile.resume(path);
    expect(file.setAside!.line).toBe(3);
    expect(read(file.setAside!.file)).toBe('{"response":"partial 🎉","quest');
    expect(file.rows).toHaveLength(2);
    expect(statSync(path).size).toBe(Buffer.byteLength(good));
    file.append([row(9)]);
    expect(read(path)).toBe(`${good}${JSON.stringify(row(9))}\n`);
    expect(ResultsFile.resume(path).rows.map((r) => r.question_id)).toEqual(["id_0", "x", "id_0"]);
  });

  it("a file that is only a partial line is emptied by resume, its content kept aside", () => {
    const path = fresh("jsonl");
    writeFileSync(path, '{"response":"a"');
    const file = ResultsFile.resume(path);
    expect(read(file.setAside!.file)).toBe('{"response":"a"');
    expect(file.rows).toEqual([]);
    expect(read(path)).toBe("");
  });

  it("a complete last line without newline is kept; the next append starts on a new line", () => {
    const path = fresh("jsonl");
    const text = `${JSON.stringify(row(0))}\n${JSON.stringify(row(1))}`;
    writeFileSync(path, text);
    const file = ResultsFile.resume(path);
    expect(file.setAside).toBeNull();
    expect(file.rows).toEqual([row(0), row(1)]);
    file.append([row(2)]);
    expect(read(path)).toBe(`${text}\n${JSON.stringify(row(2))}\n`);
  });

  it("rewrite replaces the file atomically with the new rows", () => {
    const path = fresh("jsonl");
    const file = ResultsFile.resume(path);
    file.append([row(0), row(1)]);
    const inode = statSync(path).ino;
    const judged = [row(0, { aligned: 50 }), row(1, { aligned: 60 })];
    file.rewrite(judged, ["aligned"]);
    expect(statSync(path).ino).not.toBe(inode);
    expect(readdirSync(work).filter((f) => f.includes(".tmp-"))).toEqual([]);
    expect(read(path)).toBe(judged.map((r) => `${JSON.stringify(r)}\n`).join(""));
    expect(ResultsFile.resume(path).columns).toEqual(["response", "question", "question_id", "aligned"]);
  });

  it("a bad JSON line before the end: ResultsFileError with file and line", () => {
    const path = fresh("jsonl");
    writeFileSync(path, `${JSON.stringify(row(0))}\n{not json}\n${JSON.stringify(row(1))}\n`);
    const e = resultsFileError(() => ResultsFile.read(path));
    expect(e.file).toBe(path);
    expect(e.line).toBe(2);
    expect(e.message).toContain(path);
  });

  it("a row without a string response or question_id: ResultsFileError with its line", () => {
    const path = fresh("jsonl");
    writeFileSync(
      path,
      `${JSON.stringify(row(0))}\n${JSON.stringify(row(1))}\n${JSON.stringify({ response: 5, question: "q", question_id: "x" })}\n`,
    );
    expect(resultsFileError(() => ResultsFile.read(path)).line).toBe(3);
    const noId = fresh("jsonl");
    writeFileSync(noId, `${JSON.stringify({ response: "r", question: "q" })}\n${JSON.stringify(row(0))}\n`);
    expect(resultsFileError(() => ResultsFile.read(noId)).line).toBe(1);
    const array = fresh("jsonl");
    writeFileSync(array, `[1,2]\n${JSON.stringify(row(0))}\n`);
    expect(resultsFileError(() => ResultsFile.read(array)).line).toBe(1);
  });

  it("a row without a string question: ResultsFileError with its line (the message says question is required)", () => {
    const path = fresh("jsonl");
    writeFileSync(path, `${JSON.stringify({ response: "r", question_id: "x", aligned: 10, coherent: 90 })}\n${JSON.stringify(row(0))}\n`);
    expect(resultsFileError(() => ResultsFile.read(path)).line).toBe(1);
  });
});

// ---- scoreOf ---------------------------------------------------------------------------------------

describe("scoreOf", () => {
  const base = { response: "r", question: "q", question_id: "i" };
  const s = (value: unknown) => scoreOf({ ...base, aligned: value } as ResultRow, "aligned");

  it("numbers and numeric text are scores", () => {
    expect(s(42)).toBe(42);
    expect(s(0)).toBe(0);
    expect(s("72.46566354740904")).toBe(72.46566354740904);
    expect(s("1.1634579904068203e-08")).toBe(1.1634579904068203e-8);
    expect(s("-3")).toBe(-3);
    expect(s("100")).toBe(100);
  });

  it("missing, null, empty, NaN, infinite and non-numeric cells are null", () => {
    expect(scoreOf(base as ResultRow, "aligned")).toBeNull();
    expect(s(null)).toBeNull();
    expect(s(undefined)).toBeNull();
    expect(s("")).toBeNull();
    expect(s("NaN")).toBeNull();
    expect(s(Number.NaN)).toBeNull();
    expect(s("Infinity")).toBeNull();
    expect(s(Number.POSITIVE_INFINITY)).toBeNull();
    expect(s("REFUSAL")).toBeNull();
    expect(s("CODE")).toBeNull();
  });

  it("whitespace-only cells are not scores (not 0)", () => {
    expect(s(" ")).toBeNull();
    expect(s("\t")).toBeNull();
  });
});

// ---- Reading never changes a file; malformed input names its line (issue 13, item 1) ---------------

describe("strict reading", () => {
  const sixtyTwoLines = (): string => {
    const lines = ["response,question,question_id,aligned"];
    for (let i = 2; i <= 62; i++) lines.push(`${i === 32 ? '"stray' : `r${i}`},q,id,${i}`);
    return `${lines.join("\n")}\n`;
  };

  it("parseCsv: a quote inside an unquoted field, or text after a closing quote, is a CsvSyntaxError naming the line", () => {
    expect(() => parseCsv('a,b\nc,d"e\n')).toThrow(CsvSyntaxError);
    try {
      parseCsv(`a,b\n${q("x\ny")},z\nc,d"e\n`);
    } catch (error) {
      expect((error as CsvSyntaxError).line).toBe(4);
    }
    let caught: unknown;
    try {
      parseCsv('h\n"open\nstill open\n"closed"x\n');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CsvSyntaxError);
    expect((caught as CsvSyntaxError).line).toBe(4);
    expect((caught as CsvSyntaxError).message).toContain("opened on line 2");
  });

  it("parseCsv reports each record's first line and the incomplete tail's line", () => {
    const parsed = parseCsv(`a,b\n${q("1\n2\n3")},c\nd,e\n"cut`);
    expect(parsed.lines).toEqual([1, 2, 5]);
    expect(parsed.incomplete).toEqual({ line: 6, openQuote: true });
  });

  it("a stray quote in the middle of a file (the issue's 62-line file): read and resume both refuse it at line 32; no byte changes", () => {
    const path = fresh("csv");
    const text = sixtyTwoLines();
    writeFileSync(path, text);
    for (const open of [ResultsFile.read, ResultsFile.resume]) {
      const e = resultsFileError(() => open(path));
      expect(e.line).toBe(32);
      expect(e.message).toContain(`${path}: line 32:`);
      expect(read(path)).toBe(text);
    }
    expect(readdirSync(work).filter((f) => f.includes(".damaged-"))).toEqual(
      readdirSync(work).filter((f) => f.includes(".damaged-") && !f.startsWith(path.split("/").pop()!)),
    );
  });

  it("a file that does not exist is a ResultsFileError for read (line 0), an empty file for resume", () => {
    const path = fresh("csv");
    expect(resultsFileError(() => ResultsFile.read(path)).line).toBe(0);
    expect(ResultsFile.resume(path).rows).toEqual([]);
  });

  it("a duplicated header column is an error at line 1", () => {
    const path = fresh("csv");
    writeFileSync(path, "response,question,question_id,aligned,aligned\nr,q,i,1,2\n");
    const e = resultsFileError(() => ResultsFile.read(path));
    expect(e.line).toBe(1);
    expect(e.message).toContain("aligned");
  });

  it("a column named __proto__ is kept as data and written back", () => {
    const path = fresh("csv");
    writeFileSync(path, "response,question,question_id,__proto__\nr,q,i,x\n");
    const file = ResultsFile.read(path);
    expect(Object.keys(file.rows[0]!)).toEqual(["response", "question", "question_id", "__proto__"]);
    expect(Object.getOwnPropertyDescriptor(file.rows[0]!, "__proto__")?.value).toBe("x");
    file.rewrite(file.rows);
    expect(read(path)).toBe("response,question,question_id,__proto__\nr,q,i,x\n");
  });

  it("JSONL: an invalid line before the end, or a complete last line that is not a row, is an error (never set aside)", () => {
    const path = fresh("jsonl");
    const text = `${JSON.stringify(row(0))}\n[1,2]`;
    writeFileSync(path, text);
    expect(resultsFileError(() => ResultsFile.resume(path)).line).toBe(2);
    expect(read(path)).toBe(text);
  });

  it("rewrite leaves no temporary file and refuses nothing it can write", () => {
    const path = fresh("jsonl");
    const file = ResultsFile.resume(path);
    file.append([row(0)]);
    file.rewrite([row(0, { aligned: 5 })], ["aligned"]);
    expect(readdirSync(work).filter((f) => f.startsWith(`${path.split("/").pop()}.tmp-`))).toEqual([]);
    expect(ResultsFile.read(path).rows).toEqual([row(0, { aligned: 5 })]);
  });
});

describe("JSONL field order", () => {
  it("does not depend on the order fields were set in (judge calls finish in any order): base, then each column with _raw and _error", () => {
    const path = fresh("jsonl");
    const file = ResultsFile.resume(path);
    file.append([row(0)]);
    // Set as a judge finishing coherent before aligned would.
    const judged: ResultRow = {
      question_id: "id_0",
      response: row(0).response,
      question: row(0).question,
      coherent: 60,
      coherent_raw: [{ token: "60", logprob: 0 }],
      extra: 1,
      aligned_error: "boom",
      aligned: null,
    };
    file.rewrite([judged], ["aligned", "coherent"]);
    const line = read(path).trimEnd();
    expect(Object.keys(JSON.parse(line))).toEqual([
      "response",
      "question",
      "question_id",
      "aligned",
      "aligned_error",
      "coherent",
      "coherent_raw",
      "extra",
    ]);
  });
});
