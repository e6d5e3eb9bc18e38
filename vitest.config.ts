// Vitest settings: native addons run in forked processes (one libtorch per fork).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The peer suite needs the Python peer environment: npm run test:peer (vitest.peer.config.ts).
    exclude: ["test/peer/**", "**/node_modules/**"],
    pool: "forks",
    // --expose-gc lets the safety-net tests (test/tensor/gc.test.ts) force collections.
    execArgv: ["--expose-gc"],
    // Test files run in parallel forks on few cores: OpenMP threads sleep at once instead of spinning
    // (emlab's own default is a bounded spin, src/native/addon.ts), so no fork burns another's core.
    env: { OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" },
    // Generous: the 2-core CI machine is shared, and under load a training test (e.g. the bit-identical
    // resume in test/train/recipe.test.ts, ~50 s alone, and its set-up hook) exceeded 60 s.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ["default"],
  },
});
