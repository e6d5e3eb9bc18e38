/**
 * Persistent judge cache: one JSON line per (judge model, prompt) with its score and raw top
 * logprobs, so re-running a judgement costs nothing. Keys are SHA-256 digests; the file holds no
 * credentials.
 */
import { existsSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { appendOutputFile } from "../../io/output.js";
import type { JudgeScore } from "./score.js";

export class JudgeCache {
  private readonly entries = new Map<string, JudgeScore>();

  constructor(readonly path: string | null) {
    if (path && existsSync(path)) {
      for (const line of readFileSync(path, "utf8").split("\n")) {
        if (line.trim() === "") continue;
        try {
          const entry = JSON.parse(line) as { key: string; score: number | null; numericMass: number; top: JudgeScore["top"] };
          this.entries.set(entry.key, { score: entry.score, numericMass: entry.numericMass, top: entry.top });
        } catch {
          // a line cut short by an interrupted write: ignore it, the call is simply made again
        }
      }
    }
  }

  static key(model: string, prompt: string): string {
    return createHash("sha256").update(model).update("\0").update(prompt).digest("hex");
  }

  get(model: string, prompt: string): JudgeScore | undefined {
    return this.entries.get(JudgeCache.key(model, prompt));
  }

  set(model: string, prompt: string, score: JudgeScore): void {
    const key = JudgeCache.key(model, prompt);
    this.entries.set(key, score);
    if (this.path) appendOutputFile(this.path, `${JSON.stringify({ key, model, ...score })}\n`);
  }

  get size(): number {
    return this.entries.size;
  }
}
