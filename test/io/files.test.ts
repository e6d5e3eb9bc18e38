// Covers src/io/files.ts: reading refuses special files at once (a FIFO is not waited on), decodes strict UTF-8, and
// makeDirectory creates nested directories but fails at once, typed, where mkdirSync({recursive}) loops for ever
// (/proc/x, issue 13 item 11) or where a file is in the way.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeDirectory, OutputDirectoryError, readTextFile } from "../../src/io/files.js";
import { makeOutputDir } from "../../src/io/output.js";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-files-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("makeDirectory", () => {
  it("creates missing parents and accepts an existing directory", () => {
    const target = join(dir, "a", "b", "c");
    makeDirectory(target);
    expect(statSync(target).isDirectory()).toBe(true);
    makeDirectory(target);
  });

  it("/proc/x/run fails at once with an OutputDirectoryError (Node's recursive mkdir never returns there)", () => {
    // The hang itself, shown in a child process with a time limit so this test cannot hang.
    const recursive = spawnSync(process.execPath, ["-e", 'require("fs").mkdirSync("/proc/x/run", { recursive: true })'], { timeout: 3000 });
    const started = Date.now();
    expect(() => makeDirectory("/proc/x/run")).toThrow(OutputDirectoryError);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(existsSync("/proc/x")).toBe(false);
    // Documented for the record: mkdirSync(recursive) was killed by the time limit (or failed) rather than succeeding.
    expect(recursive.status).not.toBe(0);
  });

  it("makeOutputDir (training's output_dir) also refuses /proc/x/run at once, typed", () => {
    const started = Date.now();
    let error: unknown;
    try {
      makeOutputDir("/proc/x/run");
    } catch (e) {
      error = e;
    }
    expect(Date.now() - started).toBeLessThan(1000);
    expect((error as { _tag?: string })._tag).toBeDefined();
    expect(String((error as Error).message)).toContain("/proc/x/run");
  });

  it("a file in the way is an OutputDirectoryError naming the path", () => {
    const file = join(dir, "file");
    writeFileSync(file, "x");
    expect(() => makeDirectory(join(file, "sub"))).toThrow(OutputDirectoryError);
    expect(() => makeDirectory(file)).toThrow(/not a directory/);
  });
});

describe("readTextFile", () => {
  it("refuses a FIFO at once and invalid UTF-8", () => {
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    expect(() => readTextFile(fifo)).toThrow(/not a regular file \(a FIFO\)/);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, Buffer.from([0x7b, 0xff, 0x7d]));
    expect(() => readTextFile(bad)).toThrow(/not valid UTF-8/);
  });
});
