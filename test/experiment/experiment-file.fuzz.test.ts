// Property tests of the experiment-file reader and planner: a valid experiment file with one field
// replaced by a hostile value, a stage dropped or duplicated, or its YAML text cut or spliced, is either
// accepted (and then every stage name is unique and every reference resolves to a planned stage) or refused
// with an ExperimentFileError — never another exception, never a crash. Budget: fuzzRuns (EMLAB_FUZZ_SCALE).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { parse as parseYaml, stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { planExperiment } from "../../src/experiment/plan.js";
import { decodeExperiment, ExperimentFileError, readExperiment, stageReferences } from "../../src/experiment/schema.js";
import { fuzzParameters } from "../helpers/fuzz.js";
import { experimentYaml } from "./fixture.js";

const valid = parseYaml(experimentYaml()) as Record<string, unknown>;

const hostile = fc.oneof(
  fc.constantFrom(
    null,
    undefined,
    "",
    "../../etc/passwd",
    "__proto__",
    "constructor",
    -1,
    0,
    1.5,
    1e308,
    Number.NaN,
    true,
    [],
    {},
    [1, 2],
    { kind: "train" },
  ),
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double(),
);

/** Every path to a leaf or object inside `value` (arrays by index). */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object") return [prefix];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return [prefix, ...entries.flatMap(([k, v]) => paths(v, [...prefix, k]))];
}
const allPaths = paths(valid).filter((p) => p.length > 0);

function withValue(root: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  at[path.at(-1)!] = value;
  return copy;
}

/** Decodes and plans; returns "accepted" or "refused", rethrowing anything that is not an ExperimentFileError. */
function outcome(run: () => ReturnType<typeof planExperiment>): "accepted" | "refused" {
  try {
    const plan = run();
    const names = plan.stages.map((s) => s.stage.name);
    expect(new Set(names).size).toBe(names.length);
    for (const planned of plan.stages) {
      for (const [, ref] of stageReferences(planned.stage))
        if (names.includes(ref)) expect(names.indexOf(ref)).toBeLessThan(names.indexOf(planned.stage.name));
    }
    return "accepted";
  } catch (error) {
    if (error instanceof ExperimentFileError) return "refused";
    throw error;
  }
}

describe("experiment files under mutation", () => {
  it("one field replaced by a hostile value: accepted with a consistent plan, or an ExperimentFileError", () => {
    const seen = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(fc.constantFrom(...allPaths), hostile, (path, value) => {
        seen[outcome(() => planExperiment(decodeExperiment(withValue(valid, path, value), "x.yaml"), { model: "m" }))]++;
      }),
      fuzzParameters(300),
    );
    expect(seen.refused).toBeGreaterThan(0);
  });

  it("stages dropped, duplicated or reordered: accepted with a consistent plan, or an ExperimentFileError", () => {
    const stages = valid.stages as unknown[];
    fc.assert(
      fc.property(fc.array(fc.nat({ max: stages.length - 1 }), { maxLength: stages.length + 2 }), (picks) => {
        outcome(() =>
          planExperiment(decodeExperiment({ ...valid, stages: picks.map((i) => structuredClone(stages[i])) }, "x.yaml"), { model: "m" }),
        );
      }),
      fuzzParameters(100),
    );
  });

  it("YAML text cut or spliced: readExperiment accepts or refuses with an ExperimentFileError", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-exp-fuzz-"));
    const text = stringify(valid);
    let n = 0;
    fc.assert(
      fc.property(fc.nat({ max: text.length }), fc.nat({ max: text.length }), fc.string({ maxLength: 8 }), (a, b, insert) => {
        const [from, to] = a <= b ? [a, b] : [b, a];
        const file = join(dir, `e${n++}.yaml`);
        writeFileSync(file, text.slice(0, from) + insert + text.slice(to));
        outcome(() => planExperiment(readExperiment(file), { model: "m" }));
      }),
      fuzzParameters(150),
    );
  });
});
