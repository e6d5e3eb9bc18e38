/**
 * Content hashes of stage inputs (files or directories, recursively, names included). Files up to
 * 64 MiB are hashed whole; larger ones (model weights) by their size and their first and last MiB,
 * which changes whenever a checkpoint is rewritten but avoids reading tens of gigabytes per run.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { join } from "node:path";

const WHOLE_LIMIT = 64 * 1024 * 1024;
const EDGE = 1024 * 1024;

function hashFile(path: string, hash: ReturnType<typeof createHash>): void {
  const size = statSync(path).size;
  const fd = openSync(path, "r");
  try {
    const chunk = Buffer.alloc(Math.min(EDGE, Math.max(1, size)));
    const feed = (from: number, until: number) => {
      for (let offset = from; offset < until;) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, until - offset), offset);
        if (n <= 0) break;
        hash.update(chunk.subarray(0, n));
        offset += n;
      }
    };
    hash.update(`size:${size}\0`);
    if (size <= WHOLE_LIMIT) feed(0, size);
    else {
      feed(0, EDGE);
      feed(size - EDGE, size);
    }
  } finally {
    closeSync(fd);
  }
}

/** sha256 (hex) of a file or directory, or null when the path does not exist. */
export function contentHash(path: string): string | null {
  if (!existsSync(path)) return null;
  const hash = createHash("sha256");
  const walk = (p: string, rel: string) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) walk(join(p, name), rel ? `${rel}/${name}` : name);
    } else {
      hash.update(`file:${rel}\0`);
      hashFile(p, hash);
    }
  };
  walk(path, "");
  return hash.digest("hex");
}

/** sha256 (hex) of a JSON value with sorted keys. */
export function valueHash(value: unknown): string {
  const canonical = (v: unknown): unknown =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v as object)
            .sort()
            .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
        )
      : Array.isArray(v)
        ? v.map(canonical)
        : v;
  return createHash("sha256")
    .update(JSON.stringify(canonical(value)))
    .digest("hex");
}
