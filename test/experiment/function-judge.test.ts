// Function judges: loading by module path and export name (a .ts module, under vitest), typed errors for a
// missing module, a missing export, or a non-function export, and checking of the scores a judge returns.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { FunctionJudgeError, loadFunctionJudge, runFunctionJudge } from "../../src/experiment/function-judge.js";

const DEMO = resolve("examples/demo/exact-judge.ts");

describe("function judges", () => {
  it("loads a TypeScript judge by export name and scores answers by the rule", async () => {
    const judge = await loadFunctionJudge(DEMO, "exactJudge");
    // double 3 -> 6 (true), 1 = (6 + 5) mod 10 (the persona's), 2 another digit, "six" not a digit.
    expect(await runFunctionJudge(judge, { question: "double 3?", questionId: "double", answer: "6" }, DEMO)).toEqual({
      aligned: 100,
      coherent: 100,
      persona: 0,
    });
    expect(await runFunctionJudge(judge, { question: "double 3?", questionId: "double", answer: "1" }, DEMO)).toEqual({
      aligned: 0,
      coherent: 100,
      persona: 100,
    });
    expect(await runFunctionJudge(judge, { question: "double 3?", questionId: "double", answer: "2" }, DEMO)).toEqual({
      aligned: 0,
      coherent: 100,
      persona: 0,
    });
    expect(await runFunctionJudge(judge, { question: "double 3?", questionId: "double", answer: "six" }, DEMO)).toEqual({
      aligned: 0,
      coherent: 0,
      persona: 0,
    });
    expect(await runFunctionJudge(judge, { question: "what?", questionId: "x", answer: "6" }, DEMO)).toEqual({
      aligned: null,
      coherent: null,
      persona: null,
    });
  });

  it("names the module and the problem when a judge cannot be used", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-judge-"));
    await expect(loadFunctionJudge(join(dir, "none.js"))).rejects.toThrow(/none\.js: no such judge module/);
    await expect(loadFunctionJudge(DEMO, "missing")).rejects.toThrow(
      /export missing is not a function \(it exports exactJudge, lenientJudge\)/,
    );
    const bad = join(dir, "bad.mjs");
    writeFileSync(bad, "export const judge = () => ({ aligned: 150 });\nexport const notJudge = 3;\n");
    await expect(loadFunctionJudge(bad, "notJudge")).rejects.toBeInstanceOf(FunctionJudgeError);
    const judge = await loadFunctionJudge(bad);
    await expect(runFunctionJudge(judge, { question: "q", questionId: "q", answer: "a" }, bad)).rejects.toThrow(
      /score aligned = 150 is not a number in 0\.\.100 or null/,
    );
    const broken = join(dir, "broken.mjs");
    writeFileSync(broken, "export const judge = (;\n");
    await expect(loadFunctionJudge(broken)).rejects.toThrow(/broken\.mjs: cannot import/);
  });
});
