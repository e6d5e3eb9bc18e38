/**
 * The run-directory lock: one process at a time writes into a run's output directory. The lock is
 * a file `.emlab.lock` created exclusively (O_EXCL) holding the owner's pid; a lock left by a process
 * that no longer exists is taken over. `scopedRunDirectory` holds it for the lifetime of a Scope.
 * It does not decide what is written in the directory.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Data, Effect, type Scope } from "effect";
import { boundary, type BoundaryError } from "./errors.js";

/** Another live process holds the run directory. */
export class RunDirectoryLockedError extends Data.TaggedError("RunDirectoryLockedError")<{
  readonly message: string;
  readonly dir: string;
  readonly pid: number;
}> {}

export const LOCK_FILE = ".emlab.lock";

/** A held lock on a run directory; release (or dispose) deletes the lock file. */
export interface RunDirectoryLock {
  readonly dir: string;
  readonly lockFile: string;
  release(): void;
  [Symbol.dispose](): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Creates `dir` if needed and takes its lock (throws RunDirectoryLockedError or a file-system error). */
export function lockRunDirectory(dir: string): RunDirectoryLock {
  mkdirSync(dir, { recursive: true });
  const lockFile = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(lockFile, "wx");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
      const pid = Number.parseInt(readFileSync(lockFile, "utf8"), 10);
      if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) {
        throw new RunDirectoryLockedError({ message: `${dir}: in use by process ${pid} (${lockFile})`, dir, pid });
      }
      unlinkSync(lockFile); // stale: its owner is gone
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      try {
        unlinkSync(lockFile);
      } catch {
        // already gone (the directory was removed): nothing left to release
      }
    };
    return { dir, lockFile, release, [Symbol.dispose]: release };
  }
}

/** The run directory locked for the lifetime of the enclosing Scope. */
export function scopedRunDirectory(dir: string): Effect.Effect<RunDirectoryLock, BoundaryError | RunDirectoryLockedError, Scope.Scope> {
  return Effect.acquireRelease(
    Effect.suspend((): Effect.Effect<RunDirectoryLock, BoundaryError | RunDirectoryLockedError> => {
      try {
        return Effect.succeed(lockRunDirectory(dir));
      } catch (error) {
        return error instanceof RunDirectoryLockedError
          ? Effect.fail(error)
          : boundary(() => {
              throw error;
            });
      }
    }),
    (lock) => Effect.sync(() => lock.release()),
  );
}
