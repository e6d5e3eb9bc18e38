/**
 * Results files of sampled and judged responses, as CSV (the study's columns `response,question,
 * question_id`, then one column per judge) or JSONL (same fields, plus each judge's raw top logprobs
 * and errors). Reading never changes a file: a malformed file, or one whose last record was cut
 * short, is a ResultsFileError naming the line. Only the writer resuming its own file (`resume`)
 * repairs a cut-off last record (an incomplete record at the very end, without newline), and it first
 * moves that tail aside into `<file>.damaged-<time>`; a malformed record anywhere else stops it too.
 * Appends are whole lines; rewrites (adding judge columns) go through io/output.ts (a private
 * temporary beside the file, then a rename).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { Data } from "effect";
import { appendOutputFile, writeOutputFile } from "../io/output.js";
import { CsvSyntaxError, formatCsvRow, parseCsv } from "./csv.js";

/** A results file that cannot be read (line 0: the file as a whole). */
export class ResultsFileError extends Data.TaggedError("ResultsFileError")<{
  readonly message: string;
  readonly file: string;
  readonly line: number;
}> {}

export type Cell = string | number | null;
/** One response: `response`, `question`, `question_id`, judge scores, and (JSONL) extra fields. */
export type ResultRow = Record<string, unknown> & { response: string; question: string; question_id: string };

const BASE_COLUMNS = ["response", "question", "question_id"];

/** What `resume` did with a cut-off last record: the line it started on and where its bytes went. */
export interface SetAside {
  line: number;
  bytes: number;
  file: string;
}

/** The parse of a file's text: rows, columns, and the cut-off tail (start offset and line) if any. */
interface Parsed {
  rows: ResultRow[];
  columns: string[];
  tail: { offset: number; line: number; why: string } | null;
  /** The text does not end with a newline (a complete last record written elsewhere). */
  needsNewline: boolean;
}

export class ResultsFile {
  private constructor(
    readonly path: string,
    readonly format: "csv" | "jsonl",
    public rows: ResultRow[],
    public columns: string[],
    /** Set by `resume` when it moved a cut-off last record aside. */
    readonly setAside: SetAside | null,
    /** The file's last record has no newline (files written elsewhere): one is added before the next append. */
    private needsNewline: boolean,
  ) {}

  /**
   * Reads an existing results file (format from the extension, .jsonl or else CSV) without changing
   * it. Missing file, malformed record or a cut-off last record: ResultsFileError naming the line.
   */
  static read(path: string): ResultsFile {
    const format = formatOf(path);
    const text = readText(path);
    const parsed = parse(path, format, text, false);
    if (parsed.tail) {
      throw new ResultsFileError({
        message: `${path}: line ${parsed.tail.line}: ${parsed.tail.why} (a write cut short?); the file was left as it is`,
        file: path,
        line: parsed.tail.line,
      });
    }
    return new ResultsFile(path, format, parsed.rows, parsed.columns, null, parsed.needsNewline);
  }

  /**
   * Opens a results file for the writer that continues it (or prepares to create it). A last record
   * cut short by an interrupted write is moved into `<file>.damaged-<time>` before the file is cut
   * back to its complete records; any other malformed record is a ResultsFileError and nothing changes.
   */
  static resume(path: string): ResultsFile {
    const format = formatOf(path);
    if (!existsSync(path)) return new ResultsFile(path, format, [], [...BASE_COLUMNS], null, false);
    const text = readText(path);
    const parsed = parse(path, format, text, true);
    let setAside: SetAside | null = null;
    if (parsed.tail) {
      const keep = Buffer.byteLength(text.slice(0, parsed.tail.offset));
      const damaged = Buffer.from(text, "utf8").subarray(keep);
      const file = `${path}.damaged-${new Date().toISOString().replace(/[:.]/g, "-")}-${randomBytes(3).toString("hex")}`;
      writeFileSync(file, damaged, { flag: "wx" });
      truncateSync(path, keep);
      setAside = { line: parsed.tail.line, bytes: damaged.length, file };
    }
    return new ResultsFile(path, format, parsed.rows, parsed.columns, setAside, parsed.needsNewline && !parsed.tail);
  }

  /**
   * @deprecated Use `read` (existing files, never changed) or `resume` (the writer). Kept for callers
   * of the old API: an existing file (or `mustExist`) is read as `read` does; a missing one is empty.
   */
  static open(path: string, options: { mustExist?: boolean } = {}): ResultsFile {
    if (options.mustExist || existsSync(path)) return ResultsFile.read(path);
    return new ResultsFile(path, formatOf(path), [], [...BASE_COLUMNS], null, false);
  }

  /** True when the file is missing or empty (a CSV then needs its header first). */
  private get blank(): boolean {
    return !existsSync(this.path) || statSync(this.path).size === 0;
  }

  private line(row: ResultRow): string {
    if (this.format === "jsonl") return `${JSON.stringify(this.ordered(row))}\n`;
    return formatCsvRow(this.columns.map((c) => (Object.hasOwn(row, c) ? (row[c] as Cell) : null) ?? null));
  }

  /**
   * The row with its fields in a fixed order (base columns, then each column with its `_raw` and
   * `_error`, then the rest), so the bytes written do not depend on the order judge calls finished in.
   */
  private ordered(row: ResultRow): ResultRow {
    const keys: string[] = [];
    for (const column of this.columns)
      for (const key of [column, `${column}_raw`, `${column}_error`]) if (Object.hasOwn(row, key) && !keys.includes(key)) keys.push(key);
    for (const key of Object.keys(row)) if (!keys.includes(key)) keys.push(key);
    return rowFrom(keys.map((key) => [key, row[key]] as const));
  }

  /** Appends whole rows (creating the file with its header when new). */
  append(rows: readonly ResultRow[]): void {
    if (rows.length === 0) return;
    const header = this.format === "csv" && this.blank ? formatCsvRow(this.columns) : "";
    const lead = this.needsNewline ? "\n" : "";
    appendOutputFile(this.path, lead + header + rows.map((r) => this.line(r)).join(""));
    this.needsNewline = false;
    this.rows.push(...rows);
  }

  /** Rewrites the whole file atomically with `rows` (adding any new columns after the existing ones). */
  rewrite(rows: readonly ResultRow[], newColumns: readonly string[] = []): void {
    for (const c of newColumns) if (!this.columns.includes(c)) this.columns.push(c);
    this.rows = [...rows];
    const body = (this.format === "csv" ? formatCsvRow(this.columns) : "") + this.rows.map((r) => this.line(r)).join("");
    writeOutputFile(this.path, body);
    this.needsNewline = false;
  }
}

function formatOf(path: string): "csv" | "jsonl" {
  return path.endsWith(".jsonl") ? "jsonl" : "csv";
}

function readText(path: string): string {
  try {
    if (!statSync(path).isFile()) throw new Error("not a regular file");
    return readFileSync(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : `cannot read (${(error as Error).message})`;
    throw new ResultsFileError({ message: `${path}: ${reason}`, file: path, line: 0 });
  }
}

/**
 * `writer`: the file is being continued by emlab, whose records always end with a newline; then a last
 * CSV record without one is a tail unless it is verifiably whole (full width, last field quoted and
 * closed), since a cut inside an unquoted field (`id_1` cut to `id_`) still looks like a record. A JSONL
 * line that parses is always whole (no proper prefix of a JSON object is JSON).
 */
function parse(path: string, format: "csv" | "jsonl", text: string, writer: boolean): Parsed {
  return format === "csv" ? parseCsvResults(path, text, writer) : parseJsonlResults(path, text);
}

/** A row object with own properties only (a column named `__proto__` stays a column). */
function rowFrom(entries: readonly (readonly [string, unknown])[]): ResultRow {
  const row: Record<string, unknown> = {};
  for (const [key, value] of entries) Object.defineProperty(row, key, { value, enumerable: true, writable: true, configurable: true });
  return row as ResultRow;
}

function parseCsvResults(path: string, text: string, writer: boolean): Parsed {
  const fail = (line: number, problem: string): never => {
    throw new ResultsFileError({ message: `${path}: line ${line}: ${problem}`, file: path, line });
  };
  let parsed: ReturnType<typeof parseCsv>;
  try {
    parsed = parseCsv(text, { acceptUnterminated: true });
  } catch (error) {
    if (error instanceof CsvSyntaxError) return fail(error.line, error.problem);
    throw error;
  }
  const { rows, lines } = parsed;
  let tail: Parsed["tail"] = null;
  if (parsed.incomplete) {
    // emlab ends every record with a newline, and a write cut short almost never stops right after one:
    // an open quote in text that ends with a newline is a malformed file (a stray quote), not a cut.
    if (/[\r\n]$/.test(text)) fail(parsed.incomplete.line, "a quoted field opened on this line is never closed (a stray quote?)");
    tail = {
      offset: parsed.completeLength,
      line: parsed.incomplete.line,
      why: "a quoted field is never closed and the file does not end with a newline",
    };
  }
  const width = rows[0]?.length ?? 0;
  // A last record without newline that has too few fields was cut between fields; for the writer, one
  // whose last field is unquoted may have been cut inside it.
  const unterminated = !tail && rows.length > 1 && text.length > 0 && !/[\r\n]$/.test(text);
  if (unterminated && (rows[rows.length - 1]!.length < width || (writer && !text.endsWith('"')))) {
    const last = rows.pop()!;
    const line = lines.pop()!;
    const why =
      last.length < width
        ? `the last record has ${last.length} of ${width} fields and no newline`
        : "the last record has no newline and its last field may be cut";
    tail = { offset: text.length - lengthOfLastRecord(text), line, why };
  }
  if (rows.length === 0) return { rows: [], columns: [...BASE_COLUMNS], tail, needsNewline: false };
  const header = rows[0]!.map((h, j) => (j === 0 ? h.replace(/^\uFEFF/, "") : h));
  for (const column of BASE_COLUMNS) if (!header.includes(column)) fail(1, `no ${column} column`);
  const seen = new Set<string>();
  for (const column of header) {
    if (seen.has(column)) fail(1, `column ${JSON.stringify(column)} appears twice`);
    seen.add(column);
  }
  const out: ResultRow[] = [];
  rows.slice(1).forEach((cells, i) => {
    if (cells.length === 1 && cells[0] === "") return; // blank line
    if (cells.length !== header.length) fail(lines[i + 1]!, `${cells.length} fields, the header has ${header.length}`);
    out.push(rowFrom(header.map((h, j) => [h, cells[j]] as const)));
  });
  return { rows: out, columns: header, tail, needsNewline: !tail && text.length > 0 && !/[\r\n]$/.test(text) };
}

/** Characters of the last record of text that does not end with a record end (no open quote). */
function lengthOfLastRecord(text: string): number {
  const { completeLength } = parseCsv(text);
  return text.length - completeLength;
}

function parseJsonlResults(path: string, text: string): Parsed {
  const lines = text.split("\n");
  let tail: Parsed["tail"] = null;
  const last = lines[lines.length - 1]!;
  // A prefix of a JSON object is never JSON: a last line that does not parse was cut short.
  if (last.trim() !== "" && !parsesAsJson(last)) {
    tail = { offset: text.length - last.length, line: lines.length, why: "the last line is not complete JSON and has no newline" };
    lines.pop();
  }
  const rows: ResultRow[] = [];
  const columns = new Set(BASE_COLUMNS);
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const problem = jsonRowProblem(line);
    if (problem !== null) throw new ResultsFileError({ message: `${path}: line ${i + 1}: ${problem}`, file: path, line: i + 1 });
    const row = JSON.parse(line) as ResultRow;
    for (const key of Object.keys(row)) if (!key.endsWith("_raw") && !key.endsWith("_error")) columns.add(key);
    rows.push(row);
  });
  return { rows, columns: [...columns], tail, needsNewline: !tail && text.length > 0 && !text.endsWith("\n") };
}

function parsesAsJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

/** Why a JSONL line is not a results row, or null when it is one. */
function jsonRowProblem(line: string): string | null {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  if (row === null || typeof row !== "object" || Array.isArray(row)) return "not a JSON object";
  const r = row as Record<string, unknown>;
  for (const key of BASE_COLUMNS)
    if (typeof r[key] !== "string")
      return `needs string response, question and question_id (${key} is ${r[key] === undefined ? "missing" : typeof r[key]})`;
  return null;
}

/** A judge score cell as a number, or null when empty / not numeric. */
export function scoreOf(row: ResultRow, judge: string): number | null {
  const value = Object.hasOwn(row, judge) ? row[judge] : undefined;
  if (value === null || value === undefined) return null;
  if (typeof value === "string" && value.trim() === "") return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}
