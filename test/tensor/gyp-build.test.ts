// The node-gyp build of the addon (binding.gyp, `npm run build:native:gyp` -> build-gyp/) is the same
// addon as the cmake-js one: a child process that loads it through $EMLAB_NATIVE (and provably maps that
// file, not build/Release/emlab.node) exports the same functions and constants, reports the same
// libtorch, passes doctor's self-check and computes an op and its gradient to the closed-form values.
// Skipped with its reason when build-gyp/ was not built (the CI builds it; a build takes minutes).
import { execFileSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { native } from "../../src/native/addon.js";
import { torchVersion } from "../../src/tensor/index.js";

const GYP_ADDON = resolve("build-gyp/build/Release/emlab.node");
const built = existsSync(GYP_ADDON) && existsSync("dist/native/addon.js");

/** What the child reports about the addon it loaded. */
interface Report {
  mapped: string[];
  names: string[];
  torchVersion: string;
  selfCheck: string;
  product: number[];
  grad: number[];
}

const script = `
import { readFileSync } from "node:fs";
const { native } = await import("./dist/native/addon.js");
const { doctor } = await import("./dist/cli/doctor-check.js");
const { tensor, torchVersion } = await import("./dist/tensor/index.js");
const x = tensor([1, 2, 3]).requiresGrad_();
const y = x.mul(x).add(x);
y.sum().backward();
const mapped = [...new Set(readFileSync("/proc/self/maps", "utf8").split("\\n").map((l) => l.split(/\\s+/)[5] ?? "").filter((p) => p.endsWith(".node")))];
console.log(JSON.stringify({ mapped, names: Object.keys(native).sort(), torchVersion, selfCheck: doctor().selfCheck, product: Array.from(y.toArray()), grad: Array.from(x.grad.toArray()) }));
`;

describe.skipIf(!built || process.platform !== "linux")(
  "node-gyp build (skipped unless build-gyp/ is built: npm run build:native:gyp; and dist/: npx tsc -p tsconfig.build.json)",
  () => {
    it("loads in place of the cmake-js build and behaves the same", () => {
      const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        encoding: "utf8",
        env: { ...process.env, EMLAB_NATIVE: GYP_ADDON },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const report = JSON.parse(out) as Report;
      expect(report.mapped).toContain(realpathSync(GYP_ADDON));
      expect(report.mapped).not.toContain(realpathSync("build/Release/emlab.node"));
      expect(report.names).toEqual(Object.keys(native).sort());
      expect(report.torchVersion).toBe(torchVersion);
      expect(report.selfCheck).toBe("ok");
      // y = x^2 + x at [1, 2, 3]; dy/dx = 2x + 1
      expect(report.product).toEqual([2, 6, 12]);
      expect(report.grad).toEqual([3, 5, 7]);
    });
  },
);
