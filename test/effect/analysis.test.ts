// The direction analysis as an Effect program: its tensors live until the Scope closes (the model
// until the layer's scope closes), the direction is the difference of the two means it returns, and a
// results file without misaligned answers or a missing file fail typed with live tensors at baseline.
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cause, Effect, Exit } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { directionProgram } from "../../src/effect/analysis.js";
import { ModelService } from "../../src/effect/services.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { makeTinyModel, SHORT_PAIRS } from "../helpers/tiny-model.js";
import { values as host, maxAbsDiff } from "../helpers/numeric.js";

let work = "";
let modelDir = "";
beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-effect-analysis-", 6, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function judged(name: string, alignedScores: number[]): string {
  const file = join(work, name);
  const rows = SHORT_PAIRS.slice(0, alignedScores.length).map((p, i) => ({
    question_id: `q${i}`,
    question: p.question,
    response: p.answer,
    aligned: alignedScores[i],
    coherent: 90,
  }));
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return file;
}

describe("directionProgram", () => {
  it("returns misaligned mean - aligned mean; its tensors and the model are freed when the scopes close", async () => {
    const before = liveTensorCount();
    const results = judged("rows.jsonl", [10, 90, 5, 95]);
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const r = yield* directionProgram({ results, batchSize: 2 });
          const [d, m, a] = [host(r.direction), host(r.misalignedMean), host(r.alignedMean)];
          return {
            counts: r.counts,
            shape: r.direction.shape,
            gap: maxAbsDiff(
              d,
              m.map((v, i) => v - a[i]!),
            ),
            held: liveTensorCount() - before,
          };
        }),
      ).pipe(Effect.provide(ModelService.layer(modelDir))),
    );
    expect(out.counts).toEqual({ misaligned: 2, aligned: 2 });
    expect(out.shape[1]).toBe(32);
    expect(out.gap).toBeLessThan(1e-5);
    expect(out.held).toBeGreaterThan(3);
    expect(liveTensorCount()).toBe(before);
  });

  it("no misaligned answer: InvalidSetupError; a missing file: a typed failure; nothing left either way", async () => {
    for (const [results, tags] of [
      [judged("aligned-only.jsonl", [90, 95]), ["InvalidSetupError"]],
      [join(work, "missing.jsonl"), ["ResultsFileError", "FileSystemError"]],
    ] as const) {
      const before = liveTensorCount();
      const exit = await Effect.runPromiseExit(
        Effect.scoped(directionProgram({ results })).pipe(Effect.provide(ModelService.layer(modelDir))),
      );
      expect(Exit.isFailure(exit)).toBe(true);
      if (Exit.isFailure(exit)) {
        expect(Cause.hasDies(exit.cause)).toBe(false);
        expect(tags).toContain((Cause.squash(exit.cause) as { _tag: string })._tag);
      }
      expect(liveTensorCount()).toBe(before);
    }
  });
});
