/**
 * Results files of sampled and judged responses, as CSV (the study's columns `response,question,
 * question_id`, then one column per judge) or JSONL (same fields, plus each judge's raw top logprobs
 * and errors). Opening a file repairs a record cut short by an interrupted write; appends are whole
 * lines; rewrites (adding judge columns) go through a temporary file and a rename.
 */
import { existsSync, readFileSync, statSync, truncateSync } from "node:fs";
import { Data } from "effect";
import { appendOutputFile, writeOutputFile } from "../io/output.js";
import { formatCsvRow, parseCsv } from "./csv.js";

/** A results file that cannot be read. */
export class ResultsFileError extends Data.TaggedError("ResultsFileError")<{ readonly message: string; readonly file: string; readonly line: number }> {}

export type Cell = string | number | null;
/** One response: `response`, `question`, `question_id`, judge scores, and (JSONL) extra fields. */
export type ResultRow = Record<string, unknown> & { response: string; question: string; question_id: string };

const BASE_COLUMNS = ["response", "question", "question_id"];

export class ResultsFile {
  private constructor(
    readonly path: string,
    readonly format: "csv" | "jsonl",
    public rows: ResultRow[],
    public columns: string[],
    /** Records dropped from the end because they were incomplete. */
    readonly repaired: number,
  ) {}

  /** Set when the file's last record has no newline (files written elsewhere): added before the next append. */
  private needsNewline = false;

  /**
   * Opens (or prepares to create) a results file; the format follows the extension (.csv / .jsonl).
   * A last record that is incomplete (open quote, missing fields, unparseable JSON) is the trace of an
   * interrupted write and is cut off; a complete one that only lacks its newline is kept.
   */
  static open(path: string, options: { mustExist?: boolean } = {}): ResultsFile {
    const format = path.endsWith(".jsonl") ? "jsonl" : "csv";
    if (!existsSync(path)) {
      if (options.mustExist) throw new ResultsFileError({ message: `${path}: no such file`, file: path, line: 0 });
      return new ResultsFile(path, format, [], [...BASE_COLUMNS], 0);
    }
    const text = readFileSync(path, "utf8");
    const file = format === "csv" ? ResultsFile.readCsv(path, text) : ResultsFile.readJsonl(path, text);
    const now = readFileSync(path, "utf8");
    file.needsNewline = now.length > 0 && !now.endsWith("\n");
    return file;
  }

  /** True when the file is missing or empty (a CSV then needs its header first). */
  private get blank(): boolean {
    return !existsSync(this.path) || statSync(this.path).size === 0;
  }

  private static readCsv(path: string, text: string): ResultsFile {
    const strict = parseCsv(text);
    const loose = parseCsv(text, { acceptUnterminated: true });
    let rows = strict.rows;
    let repaired = 0;
    if (strict.completeLength < text.length) {
      const width = strict.rows[0]?.length ?? loose.rows[0]?.length ?? 0;
      const last = loose.rows.length > strict.rows.length ? loose.rows[loose.rows.length - 1] : undefined;
      if (last && last.length === width) {
        rows = loose.rows; // complete record, only its newline missing
      } else {
        repaired = 1;
        truncateSync(path, Buffer.byteLength(text.slice(0, strict.completeLength)));
      }
    }
    if (rows.length === 0) return new ResultsFile(path, "csv", [], [...BASE_COLUMNS], repaired);
    const header = rows[0]!.map((h) => h.replace(/^\uFEFF/, ""));
    for (const column of BASE_COLUMNS) {
      if (!header.includes(column)) throw new ResultsFileError({ message: `${path}: line 1: no ${column} column`, file: path, line: 1 });
    }
    const out: ResultRow[] = [];
    rows.slice(1).forEach((cells, i) => {
      if (cells.length === 1 && cells[0] === "") return; // blank line
      if (cells.length !== header.length) {
        throw new ResultsFileError({ message: `${path}: record ${i + 2}: ${cells.length} fields, header has ${header.length}`, file: path, line: i + 2 });
      }
      const row: Record<string, unknown> = {};
      header.forEach((h, j) => {
        row[h] = cells[j];
      });
      out.push(row as ResultRow);
    });
    return new ResultsFile(path, "csv", out, header, repaired);
  }

  private static readJsonl(path: string, text: string): ResultsFile {
    const lines = text.split("\n");
    let repaired = 0;
    const tail = lines[lines.length - 1]!;
    if (tail !== "" && !isCompleteJsonRow(tail)) {
      // An interrupted append: drop the partial line.
      repaired = 1;
      const keep = text.slice(0, text.lastIndexOf("\n") + 1);
      truncateSync(path, Buffer.byteLength(keep));
      lines.pop();
    }
    const rows: ResultRow[] = [];
    const columns = new Set(BASE_COLUMNS);
    lines.forEach((line, i) => {
      if (line.trim() === "") return;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (error) {
        throw new ResultsFileError({ message: `${path}: line ${i + 1}: not JSON (${(error as Error).message})`, file: path, line: i + 1 });
      }
      if (row === null || typeof row !== "object" || !isCompleteJsonRow(line)) {
        throw new ResultsFileError({ message: `${path}: line ${i + 1}: needs string response, question and question_id`, file: path, line: i + 1 });
      }
      for (const key of Object.keys(row)) if (!key.endsWith("_raw") && !key.endsWith("_error")) columns.add(key);
      rows.push(row as ResultRow);
    });
    return new ResultsFile(path, "jsonl", rows, [...columns], repaired);
  }

  private line(row: ResultRow): string {
    if (this.format === "jsonl") return `${JSON.stringify(row)}\n`;
    return formatCsvRow(this.columns.map((c) => (row[c] ?? null) as Cell));
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

function isCompleteJsonRow(line: string): boolean {
  try {
    const row = JSON.parse(line) as ResultRow;
    return row !== null && typeof row === "object" && typeof row.response === "string" && typeof row.question === "string" && typeof row.question_id === "string";
  } catch {
    return false;
  }
}

/** A judge score cell as a number, or null when empty / not numeric. */
export function scoreOf(row: ResultRow, judge: string): number | null {
  const value = row[judge];
  if (value === null || value === undefined) return null;
  if (typeof value === "string" && value.trim() === "") return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}
