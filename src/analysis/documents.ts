/**
 * The text corpus of the significance analysis: `.jsonl` (one JSON object per line with a string
 * `text`) or `.txt` (one document per line). Each document is cut to 2000 characters (code points,
 * like Python's slicing), as the study does. Nothing is dropped: an empty document, a bad line or an
 * empty file is a DocumentsError naming the file and line.
 */
import { readFileSync } from "node:fs";
import { Data } from "effect";

export class DocumentsError extends Data.TaggedError("DocumentsError")<{
  readonly message: string;
  readonly file: string;
  readonly line: number;
}> {}

export const MAX_DOCUMENT_CHARS = 2000;

export function readDocuments(file: string, options: { maxChars?: number } = {}): string[] {
  const fail = (line: number, problem: string): never => {
    throw new DocumentsError({ message: `${file}${line > 0 ? `:${line}` : ""}: ${problem}`, file, line });
  };
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch (error) {
    return fail(0, `cannot read (${(error as Error).message})`);
  }
  const jsonl = /\.jsonl$/i.test(file);
  if (!jsonl && !/\.txt$/i.test(file)) fail(0, "expected a .jsonl (field text) or .txt (one document per line) file");
  const lines = raw.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop(); // the final newline
  const max = options.maxChars ?? MAX_DOCUMENT_CHARS;
  const documents = lines.map((line, i) => {
    let text: string;
    if (jsonl) {
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (error) {
        return fail(i + 1, `not JSON (${(error as Error).message})`);
      }
      const value = (row as { text?: unknown } | null)?.text;
      if (typeof value !== "string") return fail(i + 1, "no string field text");
      text = value;
    } else {
      text = line;
    }
    if (text.trim() === "") fail(i + 1, "empty document");
    const points = Array.from(text);
    return points.length > max ? points.slice(0, max).join("") : text;
  });
  if (documents.length === 0) fail(0, "no documents");
  return documents;
}
