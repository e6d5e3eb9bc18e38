/**
 * Reading input files safely: opened without blocking (a FIFO or device given as a model file would
 * otherwise wait for a writer for ever), refused unless regular, bounded in size, and decoded as
 * strict UTF-8 when text is wanted. Errors are plain messages; callers wrap them in their typed error.
 */
import { closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Data } from "effect";

/** An output directory that cannot be created. */
export class OutputDirectoryError extends Data.TaggedError("OutputDirectoryError")<{ readonly message: string; readonly path: string }> {}

/** Opens `file` for reading without blocking on FIFOs; throws unless it is a regular file. Returns fd and size. */
export function openRegularFile(file: string): { fd: number; size: number } {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile())
      throw new Error(`not a regular file (${stat.isFIFO() ? "a FIFO" : stat.isDirectory() ? "a directory" : "a special file"})`);
    return { fd, size: stat.size };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Largest text input read whole (configs, tokenizers, templates). */
export const MAX_TEXT_FILE_BYTES = 512 * 1024 * 1024;

/** The bytes of a regular file no larger than `maxBytes`. */
export function readRegularFile(file: string, maxBytes = MAX_TEXT_FILE_BYTES): Buffer {
  const { fd, size } = openRegularFile(file);
  try {
    if (size > maxBytes) throw new Error(`is ${size} bytes, more than the ${maxBytes} accepted`);
    const buffer = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buffer, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return done === size ? buffer : buffer.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes UTF-8, throwing on any invalid byte sequence (instead of substituting U+FFFD). */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new Error("is not valid UTF-8");
  }
}

/** A regular file's text (strict UTF-8). */
export function readTextFile(file: string, maxBytes = MAX_TEXT_FILE_BYTES): string {
  return decodeUtf8Strict(readRegularFile(file, maxBytes));
}

/**
 * Throws when a JSON text (already accepted by JSON.parse) has an object with a repeated key;
 * JSON.parse would silently keep the last one. Returns the path of the first duplicate otherwise null.
 */
export function findDuplicateJsonKey(text: string): string | null {
  const stack: { keys: Set<string> | null; expectKey: boolean; path: string }[] = [];
  let lastKey = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return top.path ? `${top.path}.${key}` : key;
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = j;
    } else if (c === "{" || c === "[") {
      const parent = stack[stack.length - 1];
      const path = parent ? (parent.keys ? (parent.path ? `${parent.path}.${lastKey}` : lastKey) : parent.path) : "";
      stack.push({ keys: c === "{" ? new Set() : null, expectKey: c === "{", path });
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return null;
}

/**
 * Creates `dir` and its missing parents, like mkdirSync(dir, { recursive: true }) but without its
 * endless loop on paths such as /proc/x (Node retries ENOENT there for ever): each level is created
 * in turn and any error other than "exists" is an OutputDirectoryError at once, as is an existing
 * non-directory.
 */
export function makeDirectory(dir: string): void {
  try {
    mkdirLevels(dir);
  } catch (error) {
    throw new OutputDirectoryError({
      message: `${dir}: cannot create it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      path: dir,
    });
  }
  if (!statSync(resolve(dir)).isDirectory()) throw new OutputDirectoryError({ message: `${dir} exists and is not a directory`, path: dir });
}

/** mkdirSync(dir, { recursive: true }) one level at a time; the first error other than EEXIST is thrown as is. */
export function mkdirLevels(dir: string): void {
  const missing: string[] = [];
  let current = resolve(dir);
  while (!existsSync(current)) {
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const path of missing.reverse()) {
    try {
      mkdirSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
}
