/**
 * RFC 4180 CSV: quoting on write, a parser that handles quoted newlines and doubled quotes, and
 * detection of an incomplete final record (a write cut short), so results files can be resumed.
 */

export function formatCsvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "number" ? (Number.isFinite(value) ? String(value) : "") : value;
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatCsvRow(values: readonly (string | number | null | undefined)[]): string {
  return `${values.map(formatCsvField).join(",")}\n`;
}

export interface ParsedCsv {
  rows: string[][];
  /** Characters of the text that form complete records (a trailing partial record is excluded). */
  completeLength: number;
}

/**
 * Parses CSV text. A final record inside an open quote is never returned; one that merely lacks its
 * newline is returned only with `acceptUnterminated` (files written elsewhere often end that way;
 * emlab's own files always end records with a newline, so there it marks a cut-off write).
 */
export function parseCsv(text: string, options: { acceptUnterminated?: boolean } = {}): ParsedCsv {
  const rows: string[][] = [];
  let field = "";
  let row: string[] = [];
  let quoted = false;
  let completeLength = 0;
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
      } else {
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"') {
      quoted = true;
    } else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      if (c === "\r" && text[i + 1] === "\n") i++;
      completeLength = i + 1;
    } else {
      field += c;
    }
    i++;
  }
  if (options.acceptUnterminated && !quoted && (field !== "" || row.length > 0)) {
    row.push(field);
    rows.push(row);
    completeLength = text.length;
  }
  return { rows, completeLength };
}
