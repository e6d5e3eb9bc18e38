// Covers src/train/metrics-log.ts: cutting metrics.jsonl back to the step a resumed run continues
// from, whatever point a kill hit (torn last line, final held-out line, steps after the checkpoint,
// a step logged twice by an older resume), and refusing a malformed complete line by its number.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MetricsLog, MetricsLogError } from "../../src/train/metrics-log.js";

const root = mkdtempSync(join(tmpdir(), "emlab-metrics-log-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A run directory whose metrics.jsonl holds `text`. */
function logWith(text: string | null): MetricsLog {
  const dir = join(root, `run-${counter++}`);
  const log = new MetricsLog(dir);
  mkdirSync(dir);
  if (text !== null) writeFileSync(log.file, text);
  return log;
}
const line = (step: number, extra: Record<string, unknown> = {}) => `${JSON.stringify({ step, loss: step / 10, ...extra })}\n`;
const final = (step: number) => `${JSON.stringify({ step, final_eval_loss: 1.5 })}\n`;

describe("MetricsLog.truncateAfter", () => {
  it("keeps steps 1..N and drops later steps", () => {
    const log = logWith([1, 2, 3, 4, 5].map((s) => line(s)).join(""));
    expect(log.truncateAfter(3)).toBe(2);
    expect(readFileSync(log.file, "utf8")).toBe([1, 2, 3].map((s) => line(s)).join(""));
  });

  it("drops the final held-out line (resuming a finished run writes it once again)", () => {
    const log = logWith([1, 2].map((s) => line(s)).join("") + final(2));
    expect(log.truncateAfter(2)).toBe(1);
    expect(readFileSync(log.file, "utf8")).toBe(line(1) + line(2));
  });

  it("with no checkpoint (step 0) empties the log", () => {
    const log = logWith(line(1));
    log.truncateAfter(0);
    expect(readFileSync(log.file, "utf8")).toBe("");
  });

  it("drops a last line torn by a kill mid-write", () => {
    const log = logWith(`${line(1)}${line(2)}{"step": 3, "lo`);
    expect(log.truncateAfter(2)).toBe(1);
    expect(readFileSync(log.file, "utf8")).toBe(line(1) + line(2));
  });

  it("keeps one line per step (the latest) when an older resume logged a step twice", () => {
    const log = logWith(line(1) + line(2, { v: "old" }) + line(1) + line(2, { v: "new" }) + line(3));
    log.truncateAfter(2);
    expect(readFileSync(log.file, "utf8")).toBe(line(1) + line(2, { v: "new" }));
  });

  it("leaves a log that needs no change untouched and a missing log missing", () => {
    const log = logWith(line(1) + line(2));
    expect(log.truncateAfter(5)).toBe(0);
    expect(readFileSync(log.file, "utf8")).toBe(line(1) + line(2));
    const missing = logWith(null);
    expect(missing.truncateAfter(1)).toBe(0);
    expect(missing.exists()).toBe(false);
  });

  it("a malformed complete line is an error naming its line, and the file is kept", () => {
    const text = `${line(1)}not json\n${line(2)}`;
    const log = logWith(text);
    expect(() => log.truncateAfter(1)).toThrow(MetricsLogError);
    expect(() => log.truncateAfter(1)).toThrow(`${log.file}:2`);
    expect(readFileSync(log.file, "utf8")).toBe(text);
    const noStep = logWith(`${line(1)}{"loss": 1}\n`);
    expect(() => noStep.truncateAfter(1)).toThrow(`${noStep.file}:2: no integer "step"`);
  });

  it("append writes one JSON line", () => {
    const log = logWith(null);
    log.append({ step: 1, loss: 0.5 });
    log.append({ step: 2, loss: Number.NaN });
    expect(readFileSync(log.file, "utf8")).toBe('{"step":1,"loss":0.5}\n{"step":2,"loss":null}\n');
  });
});
