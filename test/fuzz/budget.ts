// The model-input fuzz tests' budget: the shared scale of test/helpers/fuzz.ts (EMLAB_FUZZ_SCALE; CI runs scale 1,
// `npm run fuzz` sets 20) and a fixed default seed, so CI cases reproduce (EMLAB_FUZZ_SEED explores others).
import { fuzzRuns } from "../helpers/fuzz.js";

export { fuzzRuns };

/** The scale in force (for reports). */
export const FUZZ_SCALE = fuzzRuns(1000) / 1000;

/** The seed fast-check and the mutation fuzzer start from. */
export const FUZZ_SEED = Number(process.env.EMLAB_FUZZ_SEED || 20261130);
