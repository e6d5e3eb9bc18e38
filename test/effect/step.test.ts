// The step helper: a libtorch error raised by an op inside Effect.gen is a typed failure that
// Effect.catchTag can handle (not a defect), other throws stay defects, intermediates are freed on
// success and failure, and scopedStep's tensor lives exactly as long as its Scope.
import { Cause, Effect, Exit } from "effect";
import { describe, expect, it } from "vitest";
import { scopedStep, step } from "../../src/effect/step.js";
import { liveTensorCount, matmul, ones, tensor, zeros } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

describe("step", () => {
  useLeakCheck();

  it("returns the step's value and frees its intermediates", async () => {
    const before = liveTensorCount();
    // sum of a 3x4 all-ones times 4x2 all-twos = 3*2*(4*2) = 48, computed by hand
    const value = await Effect.runPromise(
      step(() =>
        matmul(ones([3, 4]), ones([4, 2]).mul(2))
          .sum()
          .toNumber(),
      ),
    );
    expect(value).toBe(48);
    expect(liveTensorCount()).toBe(before);
  });

  it("turns a shape error of libtorch into an InvalidArgumentError that catchTag handles inside Effect.gen", async () => {
    const program = Effect.gen(function* () {
      const before = yield* step(() => 1);
      const failed = yield* step(() =>
        matmul(ones([2, 3]), ones([2, 3]))
          .sum()
          .toNumber(),
      ).pipe(Effect.catchTag("InvalidArgumentError", (error) => Effect.succeed(`caught ${error.op}`)));
      return [before, failed];
    });
    const [one, caught] = await Effect.runPromise(program);
    expect(one).toBe(1);
    expect(caught).toMatch(/^caught /);
  });

  it("fails (not dies) with the typed error and its libtorch message when not caught", async () => {
    const exit = await Effect.runPromiseExit(step(() => zeros([2, 2]).reshape([5]).toNumber()));
    expect(Exit.isFailure(exit)).toBe(true);
    if (Exit.isFailure(exit)) {
      expect(Cause.hasDies(exit.cause)).toBe(false);
      const error = Cause.squash(exit.cause) as { _tag: string; torchMessage: string };
      expect(error._tag).toBe("InvalidArgumentError");
      expect(error.torchMessage.length).toBeGreaterThan(0);
    }
  });

  it("keeps a non-libtorch throw a defect", async () => {
    const exit = await Effect.runPromiseExit(
      step(() => {
        zeros([4]); // an intermediate that must still be freed
        throw new Error("a bug");
      }),
    );
    expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true);
  });

  it("scopedStep's tensor lives until its Scope closes", async () => {
    const before = liveTensorCount();
    const inside = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const t = yield* scopedStep(() => tensor(Float32Array.from([1, 2, 3])).mul(2));
          return { live: liveTensorCount() - before, values: Array.from(t.toArray() as Float32Array) };
        }),
      ),
    );
    expect(inside).toEqual({ live: 1, values: [2, 4, 6] });
    expect(liveTensorCount()).toBe(before);
  });
});
