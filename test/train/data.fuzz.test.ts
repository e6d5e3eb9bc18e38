// Property-based tests of the JSONL chat-dataset reader (src/train/data.ts readChatDataset): files of
// valid rows, hostile rows (wrong types, missing fields, no assistant turn), cut and spliced lines,
// blank lines and odd line endings. Checked against an independent row predicate written here:
// strict reading returns exactly the valid rows with their line numbers or a DatasetError naming the
// first bad line; skip_invalid returns the valid rows and counts the rest. Budget: test/helpers/fuzz-budget.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { DatasetError, readChatDataset } from "../../src/train/data.js";
import { fuzzParameters } from "../helpers/fuzz-budget.js";

const dir = mkdtempSync(join(tmpdir(), "emlab-data-fuzz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** The independent rule: a JSON object with a non-empty messages array of {role: string, content: string}, one of them an assistant. */
function isValidRow(line: string): boolean {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch {
    return false;
  }
  if (row === null || typeof row !== "object" || Array.isArray(row)) return false;
  const messages = (row as Record<string, unknown>).messages;
  if (!Array.isArray(messages) || messages.length === 0) return false;
  for (const m of messages) {
    if (m === null || typeof m !== "object" || Array.isArray(m)) return false;
    if (typeof (m as Record<string, unknown>).role !== "string" || typeof (m as Record<string, unknown>).content !== "string") return false;
  }
  return messages.some((m) => (m as Record<string, unknown>).role === "assistant");
}

const text = fc.string({ unit: "grapheme", maxLength: 40 });
const message = fc.record({ role: fc.oneof(fc.constantFrom("user", "assistant", "system"), text), content: text });
const validRow = fc
  .tuple(fc.array(message, { maxLength: 3 }), text)
  .map(([before, answer]) => JSON.stringify({ messages: [...before, { role: "assistant", content: answer }] }));
const hostileRow = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v) ?? "null"),
  fc.constantFrom(
    '{"messages": []}',
    '{"messages": [{"role": "user", "content": "hi"}]}',
    '{"messages": [{"role": "assistant", "content": 5}]}',
    '{"messages": [{"role": "assistant"}]}',
    '{"messages": [null, {"role": "assistant", "content": "x"}]}',
    '{"messages": "assistant"}',
    '{"messages": [{"role": "assistant", "content": "x"}]',
    '[{"role": "assistant", "content": "x"}]',
    '{"__proto__": {"messages": [{"role": "assistant", "content": "x"}]}}',
    "\u0000",
    "\uFEFF{}",
  ),
  fc
    .record({ messages: fc.array(fc.record({ role: fc.jsonValue(), content: fc.jsonValue() }, { requiredKeys: [] }), { maxLength: 3 }) })
    .map((r) => JSON.stringify(r)),
  validRow.chain((row) => fc.nat({ max: row.length - 1 }).map((n) => row.slice(0, n))),
  fc.string(),
);
const line = fc.oneof(
  { weight: 3, arbitrary: validRow },
  { weight: 2, arbitrary: hostileRow },
  { weight: 1, arbitrary: fc.constantFrom("", "   ", "\r") },
);
const file = fc.tuple(fc.array(line, { maxLength: 12 }), fc.constantFrom("\n", "\r\n"), fc.boolean());

describe("chat dataset fuzz", () => {
  it("strict reading: exactly the valid rows with their lines, or a DatasetError at the first invalid line", () => {
    fc.assert(
      fc.property(file, ([lines, eol, trailing]) => {
        const body = lines.join(eol) + (trailing ? eol : "");
        const path = join(dir, `d${counter++}.jsonl`);
        writeFileSync(path, body);
        // Lines as the reader numbers them (split on \n; a \r is part of the line and JSON whitespace).
        const physical = body.split("\n");
        const firstBad = physical.findIndex((l) => l.trim() !== "" && !isValidRow(l));
        let result: ReturnType<typeof readChatDataset>;
        try {
          result = readChatDataset(path);
        } catch (error) {
          expect(error, String(error)).toBeInstanceOf(DatasetError);
          expect(firstBad).toBeGreaterThanOrEqual(0);
          expect((error as DatasetError).line).toBe(firstBad + 1);
          expect((error as Error).message.startsWith(`${path}:${firstBad + 1}: `)).toBe(true);
          return;
        }
        expect(firstBad).toBe(-1);
        const expected = physical.flatMap((l, i) => (l.trim() === "" ? [] : [i + 1]));
        expect(result.examples.map((e) => e.line)).toEqual(expected);
        expect(result.skipped).toBe(0);
        for (const e of result.examples) {
          const row = JSON.parse(physical[e.line - 1]!) as { messages: { role: string; content: string }[] };
          expect(e.messages).toEqual(row.messages.map((m) => ({ role: m.role, content: m.content })));
        }
      }),
      fuzzParameters(300),
    );
  });

  it("skip_invalid: the valid rows are returned and every other non-blank line is counted", () => {
    fc.assert(
      fc.property(file, ([lines, eol, trailing]) => {
        const body = lines.join(eol) + (trailing ? eol : "");
        const path = join(dir, `s${counter++}.jsonl`);
        writeFileSync(path, body);
        const physical = body.split("\n");
        const valid = physical.flatMap((l, i) => (l.trim() !== "" && isValidRow(l) ? [i + 1] : []));
        const invalid = physical.filter((l) => l.trim() !== "" && !isValidRow(l)).length;
        const result = readChatDataset(path, { skipInvalid: true });
        expect(result.examples.map((e) => e.line)).toEqual(valid);
        expect(result.skipped).toBe(invalid);
      }),
      fuzzParameters(300),
    );
  });

  it("an unreadable path is a DatasetError, not a crash", () => {
    expect(() => readChatDataset(join(dir, "missing.jsonl"))).toThrow(DatasetError);
    expect(() => readChatDataset(dir)).toThrow(DatasetError);
  });
});
