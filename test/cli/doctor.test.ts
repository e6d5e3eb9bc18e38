// `emlab doctor`: the self-check passes on this libtorch, and the CLI prints one JSON object with the
// documented fields (run as a real child process of the compiled CLI).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { doctor, selfCheck } from "../../src/cli/doctor-check.js";
import { cuda, torchVersion } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

describe("doctor", () => {
  it("passes its self-check against the closed-form values", () => {
    expect(selfCheck()).toBe("ok");
  });

  it("reports the runtime", () => {
    const report = doctor();
    expect(report.torchVersion).toBe(torchVersion);
    expect(report.torchVersion).toMatch(/^\d+\.\d+/);
    expect(report.cuda).toBe(cuda.isAvailable());
    expect(report.threads).toBeGreaterThanOrEqual(1);
    expect(report.selfCheck).toBe("ok");
  });

  it.skipIf(!existsSync("dist/cli/main.js"))("prints JSON from the CLI (skipped when dist/ is not built)", () => {
    const out = execFileSync(process.execPath, ["bin/emlab.js", "doctor", "--json"], { encoding: "utf8" });
    const report = JSON.parse(out) as Record<string, unknown>;
    expect(report.torchVersion).toBe(torchVersion);
    expect(typeof report.cuda).toBe("boolean");
    expect(typeof report.cudaDevices).toBe("number");
    expect(report.selfCheck).toBe("ok");
    expect(String(report.libtorch)).not.toBe("unknown");
  });

  it.skipIf(!existsSync("dist/cli/main.js"))("prints the text report and its --help from the CLI (skipped when dist/ is not built)", () => {
    const text = execFileSync(process.execPath, ["bin/emlab.js", "doctor"], { encoding: "utf8" });
    expect(text).toMatch(new RegExp(`^libtorch +${torchVersion.replace(/\./g, "\\.")} \\(`, "m"));
    expect(text).toMatch(/^self-check +ok$/m);
    const help = execFileSync(process.execPath, ["bin/emlab.js", "doctor", "--help"], { encoding: "utf8" });
    expect(help).toMatch(/--json/);
    expect(help).toMatch(/^usage: emlab doctor \[--json\]/);
    expect(help).not.toMatch(/^self-check /m);
  });

  it("rejects an unknown command with a usage message and exit code 2", () => {
    let status = 0;
    let stderr = "";
    try {
      execFileSync(process.execPath, ["bin/emlab.js", "frobnicate"], { encoding: "utf8", stdio: "pipe" });
    } catch (error) {
      status = (error as { status: number }).status;
      stderr = String((error as { stderr: string }).stderr);
    }
    expect(status).toBe(existsSync("dist/cli/main.js") ? 2 : 1);
    expect(stderr).toMatch(/unknown command|dist\/ is missing/);
  });
});
