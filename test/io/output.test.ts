// Covers src/io/output.ts and the writers built on it (safetensors, PEFT adapters, results files,
// checkpoints): devices, FIFOs and directories are refused as destinations and left as they are; a
// symlink is written through (the link kept, its target replaced); a symlink planted at the old
// predictable temporary name `${out}.tmp-${pid}` is not followed; temporaries live in fresh private
// directories; names from configuration cannot leave their directory; leftovers are removed.
import { execFileSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appendOutputFile,
  makeOutputDir,
  OutputPathError,
  pathInside,
  removeStaleTemporaries,
  writeOutput,
  writeOutputDir,
  writeOutputFile,
} from "../../src/io/output.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { tensor } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

let dir = "";
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-output-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fresh = (stem: string): string => join(dir, `${stem}-${counter++}`);

/** Runs `fn`, which must throw; returns the error. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}

const saveVector = (file: string): void => {
  const t = tensor([1, 2, 3]);
  try {
    saveSafetensors(file, { x: t });
  } finally {
    t.dispose();
  }
};

/** A character device (major 1, minor 3: the null device) made here, or null where mknod is not allowed. */
function makeCharacterDevice(path: string): string | null {
  try {
    execFileSync("mknod", [path, "c", "1", "3"], { stdio: "ignore" });
    return lstatSync(path).isCharacterDevice() ? path : null;
  } catch {
    return null;
  }
}

describe("destinations that are not regular files", () => {
  it("a character device as the output is refused and stays a device (skipped where mknod is not allowed)", (context) => {
    const device = fresh("device");
    if (makeCharacterDevice(device) === null) context.skip("mknod of a character device is not allowed here (needs root)");
    const error = thrown(() => saveVector(device));
    expect(error).toBeInstanceOf(OutputPathError);
    expect(error.message).toContain("character device");
    expect(lstatSync(device).isCharacterDevice()).toBe(true);
    expect(thrown(() => writeOutputFile(device, "x"))).toBeInstanceOf(OutputPathError);
    expect(thrown(() => appendOutputFile(device, "x"))).toBeInstanceOf(OutputPathError);
    expect(lstatSync(device).isCharacterDevice()).toBe(true);
  });

  it("a FIFO as the output is refused (no hang, no replacement)", () => {
    const fifo = fresh("fifo");
    execFileSync("mkfifo", [fifo]);
    expect(thrown(() => saveVector(fifo)).message).toContain("FIFO");
    expect(thrown(() => appendOutputFile(fifo, "x"))).toBeInstanceOf(OutputPathError);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it("a directory as the output is refused and left as it is", () => {
    const d = fresh("directory");
    mkdirSync(d);
    writeFileSync(join(d, "inside"), "kept");
    expect(thrown(() => saveVector(d)).message).toContain("directory");
    expect(readFileSync(join(d, "inside"), "utf8")).toBe("kept");
  });

  it("a symlink to a device is refused; a dangling symlink is refused and kept", () => {
    const toDevice = fresh("link-to-fifo");
    const fifo = fresh("fifo-target");
    execFileSync("mkfifo", [fifo]);
    symlinkSync(fifo, toDevice);
    expect(thrown(() => writeOutputFile(toDevice, "x"))).toBeInstanceOf(OutputPathError);
    const dangling = fresh("dangling");
    symlinkSync(join(dir, "nothing-here"), dangling);
    expect(thrown(() => writeOutputFile(dangling, "x")).message).toContain("symlink to nothing");
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
  });
});

describe("symlinks and temporaries", () => {
  it("a symlink as the output is written through: the link stays, its target holds the new file", () => {
    const target = fresh("real.safetensors");
    writeFileSync(target, "old");
    const link = fresh("link.safetensors");
    symlinkSync(target, link);
    saveVector(link);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(target);
    const loaded = loadSafetensors(target).tensors;
    try {
      expect([...(loaded.get("x")!.toArray() as Float32Array)]).toEqual([1, 2, 3]);
    } finally {
      for (const t of loaded.values()) t.dispose();
    }
  });

  it("a symlink planted at the old predictable temporary name is not followed (the victim is unchanged)", () => {
    const victim = fresh("victim");
    writeFileSync(victim, "precious");
    const out = fresh("out.safetensors");
    symlinkSync(victim, `${out}.tmp-${process.pid}`);
    saveVector(out);
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(statSync(out).isFile()).toBe(true);
  });

  it("every write uses a fresh private directory (mode 0700, unpredictable name) beside the destination, removed after", () => {
    const out = fresh("private.txt");
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      writeOutput(out, (temporary) => {
        seen.push(temporary);
        expect(dirname(dirname(temporary))).toBe(dirname(out));
        expect(statSync(dirname(temporary)).mode & 0o777).toBe(0o700);
        expect(basename(temporary)).toBe(basename(out));
        writeFileSync(temporary, `v${i}`);
      });
    }
    expect(new Set(seen.map(dirname)).size).toBe(3);
    expect(seen.every((t) => !t.includes(String(process.pid)))).toBe(true);
    expect(readFileSync(out, "utf8")).toBe("v2");
    expect(readdirSync(dir).filter((n) => n.startsWith(".emlab.tmp-"))).toEqual([]);
  });

  it("a failed write leaves the previous file and no temporary", () => {
    const out = fresh("kept.txt");
    writeOutputFile(out, "before");
    expect(() =>
      writeOutput(out, (temporary) => {
        writeFileSync(temporary, "half");
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(readFileSync(out, "utf8")).toBe("before");
    expect(readdirSync(dir).filter((n) => n.startsWith(".emlab.tmp-"))).toEqual([]);
  });

  it("writeOutputDir replaces a directory whole and refuses a symlink in its place", () => {
    const d = fresh("step-000002");
    writeOutputDir(d, (t) => writeFileSync(join(t, "a"), "1"));
    writeOutputDir(d, (t) => writeFileSync(join(t, "b"), "2"));
    expect(readdirSync(d)).toEqual(["b"]);
    const elsewhere = fresh("elsewhere");
    mkdirSync(elsewhere);
    const link = fresh("step-000004");
    symlinkSync(elsewhere, link);
    expect(thrown(() => writeOutputDir(link, (t) => writeFileSync(join(t, "c"), "3")))).toBeInstanceOf(OutputPathError);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it("removeStaleTemporaries removes private and old NAME.tmp-PID leftovers, nothing else", () => {
    const d = fresh("stale");
    mkdirSync(join(d, "step-000002.tmp-12345"), { recursive: true });
    mkdirSync(join(d, "step-000004.tmp-Ab3dE9"));
    mkdirSync(join(d, ".emlab.tmp-xyz123"));
    writeFileSync(join(d, "adapter_config.json.tmp-777"), "");
    mkdirSync(join(d, "step-000006"));
    writeFileSync(join(d, "notes.tmp-draft.txt"), "");
    expect(removeStaleTemporaries(d).sort()).toEqual([
      ".emlab.tmp-xyz123",
      "adapter_config.json.tmp-777",
      "step-000002.tmp-12345",
      "step-000004.tmp-Ab3dE9",
    ]);
    expect(readdirSync(d).sort()).toEqual(["notes.tmp-draft.txt", "step-000006"]);
  });
});

describe("names from configuration stay inside their directory", () => {
  it("pathInside accepts plain names and refuses .., absolute paths and the directory itself", () => {
    expect(pathInside("/runs/a/adapter", "first")).toBe("/runs/a/adapter/first");
    for (const name of ["../../../escape-adapter", "..", "/etc", "x/../../y", "."]) {
      expect(
        thrown(() => pathInside("/runs/a/adapter", name)),
        name,
      ).toBeInstanceOf(OutputPathError);
    }
  });

  it("makeOutputDir creates missing directories, accepts a directory or a symlink to one, refuses files and devices", () => {
    const nested = join(fresh("made"), "a", "b");
    makeOutputDir(nested);
    expect(statSync(nested).isDirectory()).toBe(true);
    makeOutputDir(nested);
    const link = fresh("dir-link");
    symlinkSync(nested, link);
    makeOutputDir(link);
    const file = fresh("a-file");
    writeFileSync(file, "x");
    expect(thrown(() => makeOutputDir(file)).message).toContain("expected an output directory");
    expect(thrown(() => makeOutputDir(join(file, "below")))).toBeInstanceOf(OutputPathError);
    const fifo = fresh("fifo-dir");
    execFileSync("mkfifo", [fifo]);
    expect(thrown(() => makeOutputDir(fifo)).message).toContain("FIFO");
  });

  it("a destination in a missing directory is an OutputPathError naming it", () => {
    const out = join(dir, "no-such-dir", "x.safetensors");
    const error = thrown(() => saveVector(out));
    expect(error).toBeInstanceOf(OutputPathError);
    expect(error.message).toBe(`${out}: its directory ${join(dir, "no-such-dir")} does not exist`);
  });

  it("an existing file is replaced atomically and appendOutputFile appends to regular files", () => {
    const out = fresh("log.jsonl");
    appendOutputFile(out, "a\n");
    appendOutputFile(out, "b\n");
    expect(readFileSync(out, "utf8")).toBe("a\nb\n");
    expect(existsSync(out)).toBe(true);
  });
});
