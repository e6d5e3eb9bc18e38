// The node-gyp build of the addon (binding.gyp, `npm run build:native:gyp` -> build-gyp/) is the same
// addon as the cmake-js one: a child process that loads it through $EMLAB_NATIVE (and provably maps that
// file, not build/Release/emlab.node) exports the same functions and constants and reports the same
// libtorch as the cmake-js addon in build/ (run in a second child), passes doctor's self-check and computes
// an op and its gradient to the closed-form values.
// Skipped with its reason when build-gyp/ was not built (the CI builds it; a build takes minutes).
import { execFileSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const GYP_ADDON = resolve("build-gyp/build/Release/emlab.node");
const CMAKE_ADDON = resolve("build/Release/emlab.node");
const built = existsSync(GYP_ADDON) && existsSync(CMAKE_ADDON) && existsSync("dist/native/addon.js");

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
      // Both builds find libtorch the same way (cmake/find-libtorch.mjs), so the reference is the cmake-js
      // addon in build/, run in its own child: not the addon this process loaded, which $EMLAB_NATIVE may
      // point at another libtorch (the 2.x suite's build-torch2/).
      const run = (addon: string) =>
        JSON.parse(
          execFileSync(process.execPath, ["--input-type=module", "-e", script], {
            encoding: "utf8",
            env: { ...process.env, EMLAB_NATIVE: addon },
            stdio: ["ignore", "pipe", "pipe"],
          }),
        ) as Report;
      const report = run(GYP_ADDON);
      const reference = run(CMAKE_ADDON);
      expect(report.mapped).toContain(realpathSync(GYP_ADDON));
      expect(report.mapped).not.toContain(realpathSync(CMAKE_ADDON));
      expect(reference.mapped).toContain(realpathSync(CMAKE_ADDON));
      expect(report.names).toEqual(reference.names);
      expect(report.torchVersion).toBe(reference.torchVersion);
      expect(report.selfCheck).toBe("ok");
      // y = x^2 + x at [1, 2, 3]; dy/dx = 2x + 1
      expect(report.product).toEqual([2, 6, 12]);
      expect(report.grad).toEqual([3, 5, 7]);
    });
  },
);
