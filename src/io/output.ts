/**
 * Safe output writing, shared by every writer (safetensors, checkpoints, adapters, configs, CSV and
 * JSONL files): a file is written inside a private, exclusively created temporary directory with an
 * unpredictable name beside its destination and renamed into place, so readers never see a partial
 * file and nothing planted at a guessable name is followed. Destinations that are not regular files
 * (devices, FIFOs, sockets, directories) are refused; a symlink is written through (its target is
 * replaced, the link kept). Names built from configuration stay inside their output directory.
 */
import {
  appendFileSync,
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { Data } from "effect";
import { mkdirLevels } from "./files.js";

/** An output destination that emlab refuses to write (not a regular file, or outside its directory). */
export class OutputPathError extends Data.TaggedError("OutputPathError")<{ readonly message: string; readonly path: string }> {}

const refuse = (path: string, problem: string): never => {
  throw new OutputPathError({ message: `${path}: ${problem}`, path });
};

/** Marks the private temporary directories of this module (so leftovers of killed writers can be found). */
export const temporaryMarker = ".tmp-";

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isSocket()) return "a socket";
  return "not a regular file";
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/**
 * The path a write to `file` really replaces: `file` itself, or the file a symlink points to. Refuses
 * anything but a regular file (or a path that does not exist yet) and dangling symlinks.
 */
export function outputTarget(file: string): string {
  const stats = lstatOrNull(file);
  if (stats === null) return file;
  if (stats.isSymbolicLink()) {
    let real: string;
    try {
      real = realpathSync(file);
    } catch {
      return refuse(file, "is a symlink to nothing (refusing to replace the link)");
    }
    const target = statSync(real);
    if (!target.isFile()) refuse(file, `is a symlink to ${kindOf(target)} (${real}); only regular files are written`);
    return real;
  }
  if (!stats.isFile()) refuse(file, `is ${kindOf(stats)}; only regular files are written`);
  return file;
}

/** A fresh private directory in the directory of `target` (its name is `.emlab.tmp-` and 6 random characters). */
function privateDirBeside(target: string): string {
  try {
    return mkdtempSync(join(dirname(target), `.emlab${temporaryMarker}`));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return refuse(target, `its directory ${dirname(target)} does not exist`);
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") return refuse(target, `cannot write in ${dirname(target)} (${code})`);
    throw error;
  }
}

/**
 * Writes `file` through `write(temporaryPath)`: the temporary path lies in a fresh private directory
 * (mkdtemp: exclusive, mode 0700, random name) beside the destination, and is renamed over it at the end.
 */
export function writeOutput(file: string, write: (temporaryPath: string) => void): void {
  const target = outputTarget(file);
  const privateDir = privateDirBeside(target);
  try {
    const temporary = join(privateDir, basename(target));
    write(temporary);
    renameSync(temporary, target);
  } finally {
    rmSync(privateDir, { recursive: true, force: true });
  }
}

/** Writes `data` to `file` atomically (see writeOutput). */
export function writeOutputFile(file: string, data: string | Uint8Array): void {
  writeOutput(file, (temporary) => writeFileSync(temporary, data, { flag: "wx" }));
}

/** Appends `text` to `file` (created when missing), refusing destinations that are not regular files. */
export function appendOutputFile(file: string, text: string): void {
  appendFileSync(outputTarget(file), text);
}

/** Creates the output directory `dir` (and its parents) unless it exists; anything but a directory (or a symlink to one) in its place is refused. */
export function makeOutputDir(dir: string): void {
  let stats: Stats | null;
  try {
    stats = statSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR") return refuse(dir, "a parent of the output directory is not a directory");
    if (code !== "ENOENT") throw error;
    stats = null;
  }
  if (stats !== null) {
    if (!stats.isDirectory()) refuse(dir, `is ${kindOf(stats)}; expected an output directory`);
    return;
  }
  try {
    // Level by level: Node's recursive mkdir never returns on paths such as /proc/x (issue 13).
    mkdirLevels(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTDIR") refuse(dir, "a parent of the output directory is not a directory");
    if (code === "EACCES" || code === "EPERM" || code === "EROFS" || code === "ENOENT")
      refuse(dir, `cannot create the output directory (${code})`);
    throw error;
  }
}

/**
 * Builds the directory `dir` inside a private temporary directory `${dir}.tmp-XXXXXX` filled by
 * `fill`, then replaces any previous `dir` with it. An existing `dir` must be a real directory.
 */
export function writeOutputDir(dir: string, fill: (temporaryDir: string) => void): void {
  const stats = lstatOrNull(dir);
  if (stats !== null && !stats.isDirectory())
    refuse(dir, `is ${stats.isSymbolicLink() ? "a symlink" : kindOf(stats)}; expected a directory`);
  const temporary = mkdtempSync(`${dir}${temporaryMarker}`);
  try {
    fill(temporary);
    chmodSync(temporary, 0o755);
    if (stats !== null) rmSync(dir, { recursive: true, force: true });
    renameSync(temporary, dir);
  } catch (error) {
    rmSync(temporary, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Removes what killed writers left in `dir`: this module's private directories (`.emlab.tmp-XXXXXX`,
 * `NAME.tmp-XXXXXX`) and the older `NAME.tmp-PID` files and directories. Returns the removed names.
 */
export function removeStaleTemporaries(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const stale = names.filter((name) => /^\.emlab\.tmp-|\.tmp-([A-Za-z0-9]{6}|\d+)$/.test(name));
  for (const name of stale) rmSync(join(dir, name), { recursive: true, force: true });
  return stale;
}

/** A single path component from configuration (an adapter name, a file name): no separators, no `..`. */
export function safeComponent(name: string, what: string): string {
  if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name)) {
    refuse(name, `${what} must be a plain name (no '/', '\\', NUL, '.' or '..')`);
  }
  return name;
}

/** `root` joined with `parts`, refusing a result that is not strictly inside `root` (lexically). */
export function pathInside(root: string, ...parts: string[]): string {
  const full = resolve(root, ...parts);
  const rel = relative(resolve(root), full);
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    refuse(join(root, ...parts), `leaves its directory ${root}`);
  }
  return join(root, ...parts);
}
