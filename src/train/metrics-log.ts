/**
 * A run's metrics.jsonl: one JSON line per optimizer step (`{"step": N, ...}`) and a final held-out
 * line (`{"step": N, "final_eval_loss": ...}`). On resume the log is cut back to the checkpoint the
 * run continues from, so every step appears exactly once whatever point a kill hit: step lines after
 * the checkpoint (and any final line) are dropped, a line torn by a kill mid-write is dropped, a
 * repeated step keeps its latest line. The rewrite is atomic; a malformed complete line is an error
 * naming it (the file is then left as it is).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Data } from "effect";
import { appendOutputFile, writeOutputFile } from "../io/output.js";

export class MetricsLogError extends Data.TaggedError("MetricsLogError")<{
  readonly message: string;
  readonly file: string;
  readonly line: number;
}> {}

export class MetricsLog {
  readonly file: string;

  constructor(outputDir: string) {
    this.file = join(outputDir, "metrics.jsonl");
  }

  exists(): boolean {
    return existsSync(this.file);
  }

  append(record: object): void {
    appendOutputFile(this.file, `${JSON.stringify(record)}\n`);
  }

  /**
   * Keeps one line per step for steps 1..`step` (the point a resumed run continues from) and nothing
   * else. Returns how many lines were dropped.
   */
  truncateAfter(step: number): number {
    if (!this.exists()) return 0;
    const text = readFileSync(this.file, "utf8");
    const lines = text.split("\n");
    // The last element is "" when the file ends with a newline; anything else is a torn write.
    const complete = lines.slice(0, -1);
    const kept = new Map<number, string>();
    let total = lines[lines.length - 1] === "" ? 0 : 1;
    complete.forEach((raw, index) => {
      if (raw.trim() === "") return;
      total++;
      let record: unknown;
      try {
        record = JSON.parse(raw);
      } catch (error) {
        throw new MetricsLogError({
          message: `${this.file}:${index + 1}: not JSON (${(error as Error).message})`,
          file: this.file,
          line: index + 1,
        });
      }
      const s = (record as { step?: unknown } | null)?.step;
      if (typeof s !== "number" || !Number.isInteger(s) || s < 0) {
        throw new MetricsLogError({ message: `${this.file}:${index + 1}: no integer "step"`, file: this.file, line: index + 1 });
      }
      if ("final_eval_loss" in (record as object) || s > step) return;
      kept.delete(s);
      kept.set(s, raw);
    });
    const ordered = [...kept.entries()].sort((a, b) => a[0] - b[0]).map(([, raw]) => `${raw}\n`);
    const body = ordered.join("");
    if (body !== text) writeOutputFile(this.file, body);
    return total - ordered.length;
  }
}
