// The peer suite (npm run test:peer): live comparisons with transformers / PEFT in the peer
// environment (scripts/peer-env.sh). Kept out of the main suite, which must not need Python.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/peer/**/*.test.ts"],
    pool: "forks",
    execArgv: ["--expose-gc"],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    reporters: ["default"],
  },
});
