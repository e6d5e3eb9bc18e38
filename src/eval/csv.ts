/**
 * RFC 4180 CSV: quoting on write, and a strict parser that handles quoted newlines and doubled quotes,
 * reports the line of every record, rejects quotes where RFC 4180 allows none, and detects an
 * incomplete final record (a write cut short) without ever guessing what it meant.
 */

export function formatCsvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "number" ? (Number.isFinite(value) ? String(value) : "") : value;
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatCsvRow(values: readonly (string | number | null | undefined)[]): string {
  return `${values.map(formatCsvField).join(",")}\n`;
}

/** Text that is not RFC 4180 CSV; `line` is the 1-based line where the problem is. */
export class CsvSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(`line ${line}: ${problem}`);
    this.name = "CsvSyntaxError";
  }
}

export interface ParsedCsv {
  rows: string[][];
  /** 1-based line on which each row starts. */
  lines: number[];
  /** Characters of the text that form complete records (a trailing partial record is excluded). */
  completeLength: number;
  /**
   * The record after the complete ones, when the text does not end at a record boundary: the line it
   * starts on and why it is incomplete (an open quote, or no newline without `acceptUnterminated`).
   */
  incomplete: { line: number; openQuote: boolean } | null;
}

/**
 * Parses CSV text strictly: a quote may only open a field, and a closing quote must be followed by a
 * separator, a record end or the end of the text; anything else is a CsvSyntaxError naming its line.
 * A final record inside an open quote is never returned; one that merely lacks its newline is returned
 * only with `acceptUnterminated` (files written elsewhere often end that way; emlab's own files
 * always end records with a newline).
 */
export function parseCsv(text: string, options: { acceptUnterminated?: boolean } = {}): ParsedCsv {
  const rows: string[][] = [];
  const lines: number[] = [];
  let field = "";
  let row: string[] = [];
  let quoted = false;
  /** The current field was quoted and its closing quote has been seen. */
  let closed = false;
  let completeLength = 0;
  let line = 1;
  let recordLine = 1;
  let quoteLine = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        closed = true;
      } else {
        if (c === "\n" || (c === "\r" && text[i + 1] !== "\n")) line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === ",") {
      row.push(field);
      field = "";
      closed = false;
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      rows.push(row);
      lines.push(recordLine);
      row = [];
      field = "";
      closed = false;
      if (c === "\r" && text[i + 1] === "\n") i++;
      line++;
      recordLine = line;
      completeLength = i + 1;
    } else if (closed) {
      const opened = quoteLine === line ? "" : ` (the quoted field opened on line ${quoteLine})`;
      throw new CsvSyntaxError(line, `${JSON.stringify(c)} after a closing quote${opened}; a quote inside a field must be doubled`);
    } else if (c === '"') {
      if (field !== "")
        throw new CsvSyntaxError(line, "a quote inside an unquoted field; fields with quotes must be quoted and their quotes doubled");
      quoted = true;
      quoteLine = line;
    } else {
      field += c;
    }
    i++;
  }
  let incomplete: ParsedCsv["incomplete"] = null;
  if (quoted) {
    incomplete = { line: recordLine, openQuote: true };
  } else if (field !== "" || row.length > 0 || closed) {
    if (options.acceptUnterminated) {
      row.push(field);
      rows.push(row);
      lines.push(recordLine);
      completeLength = text.length;
    } else {
      incomplete = { line: recordLine, openQuote: false };
    }
  }
  return { rows, lines, completeLength, incomplete };
}
