/**
 * Persistent judge cache: one JSON line per (judge model, prompt) with its score and raw top
 * logprobs, so re-running a judgement costs nothing. Keys are SHA-256 digests; tokens and model names
 * are redacted before they are written, so the file holds no credentials. Only valid results are
 * cached, and an entry is used only when its raw alternatives pass the reply checks and give back its
 * score (a damaged or poisoned line is a miss: the call is made again). Reading never changes the file.
 */
import { existsSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { appendOutputFile } from "../../io/output.js";
import { redactSecrets } from "./redact.js";
import { type JudgeScore, parseTopLogprobs, scoreFromTopLogprobs } from "./score.js";

/** The entry as a JudgeScore when its alternatives are valid and reproduce its mass and score. */
function validEntry(entry: unknown): JudgeScore | null {
  if (entry === null || typeof entry !== "object") return null;
  const { score, numericMass, top } = entry as { score?: unknown; numericMass?: unknown; top?: unknown };
  if (typeof numericMass !== "number" || (score !== null && typeof score !== "number")) return null;
  try {
    const alternatives = parseTopLogprobs(top);
    // Mass and weighted mean do not depend on the threshold: recompute them with none.
    const again = scoreFromTopLogprobs(alternatives, 0);
    if (Math.abs(again.numericMass - numericMass) > 1e-9) return null;
    if (score !== null && (again.score === null || Math.abs(again.score - score) > 1e-9)) return null;
    return { score, numericMass, top: alternatives };
  } catch {
    return null;
  }
}

export class JudgeCache {
  private readonly entries = new Map<string, JudgeScore>();
  /** Lines that were not valid entries (cut short, damaged or poisoned); they are judged again. */
  readonly rejected: number = 0;
  /** The file does not end with a newline (a line cut short): the next entry starts a new line. */
  private needsNewline = false;

  constructor(readonly path: string | null) {
    if (path && existsSync(path)) {
      const text = readFileSync(path, "utf8");
      this.needsNewline = text.length > 0 && !text.endsWith("\n");
      let rejected = 0;
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue;
        let entry: unknown;
        try {
          entry = JSON.parse(line);
        } catch {
          rejected++;
          continue;
        }
        const key = (entry as { key?: unknown } | null)?.key;
        const score = validEntry(entry);
        if (typeof key !== "string" || score === null) rejected++;
        else this.entries.set(key, score);
      }
      this.rejected = rejected;
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
    if (!this.path) return;
    const top = score.top.map((t) => ({ token: redactSecrets(t.token), logprob: t.logprob }));
    const entry = { key, model: redactSecrets(model), score: score.score, numericMass: score.numericMass, top };
    // Scores without logprob evidence (a TypeScript function judge) would be rejected on reading: keep them in memory only.
    if (validEntry(entry) === null) return;
    const line = JSON.stringify(entry);
    appendOutputFile(this.path, `${this.needsNewline ? "\n" : ""}${line}\n`);
    this.needsNewline = false;
  }

  get size(): number {
    return this.entries.size;
  }
}
