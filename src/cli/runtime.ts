/**
 * How the CLI runs a command written as an Effect program: through effect's `Runtime.makeRunMain`
 * (the machinery behind @effect/platform-node's `NodeRuntime.runMain`, which emlab does not depend
 * on), with SIGINT and SIGTERM interrupting the program's fiber. Interruption runs its finalizers (a
 * training run writes its checkpoint, eval writes what it has), then the command exits 130 (SIGINT) or
 * 143 (SIGTERM). A second signal while finalizers run exits at once with the same code. Commands
 * that are plain functions do not come through here and keep Node's default signal behaviour.
 */
import { Cause, type Effect, Exit, Runtime } from "effect";

/** Exit codes of a command interrupted by a signal (128 + the signal's number). */
export const interruptedExitCode = { SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof interruptedExitCode;

/**
 * Runs `program` as the process's main fiber; resolves with its exit code (its value, or 130 / 143
 * when a signal interrupted it) and rejects with its error when it failed.
 */
export function runInterruptible(program: Effect.Effect<number, unknown>): Promise<number> {
  return new Promise((resolve, reject) => {
    const runMain = Runtime.makeRunMain(({ fiber }) => {
      let received: StopSignal | null = null;
      const stop = (signal: StopSignal) => {
        if (received !== null) process.exit(interruptedExitCode[signal]);
        received = signal;
        process.stderr.write(`emlab: ${signal}: stopping after the current unit of work (send it again to quit at once)\n`);
        fiber.interruptUnsafe();
      };
      const onInt = () => stop("SIGINT");
      const onTerm = () => stop("SIGTERM");
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
      fiber.addObserver((exit) => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        if (Exit.isSuccess(exit)) resolve(exit.value as number);
        else if (Cause.hasInterruptsOnly(exit.cause)) resolve(interruptedExitCode[received ?? "SIGINT"]);
        else reject(Cause.squash(exit.cause));
      });
    });
    runMain(program, { disableErrorReporting: true });
  });
}
