/**
 * emlab's public API, everything in one import: the subpath entry points (`emlab/tensor`,
 * `emlab/models`, `emlab/train`, `emlab/eval`, `emlab/analysis`, `emlab/effect`, each with an explicit export list in
 * src/api/), plus experiment files, reports, the demo organism and `emlab doctor`'s self-check.
 * Internals (optimizer state plumbing, handle and dtype codes, weight-name tables) are not exported.
 */
export * from "./api/tensor.js";
export * from "./api/models.js";
export * from "./api/train.js";
export * from "./api/eval.js";
export * from "./api/analysis.js";
export * from "./cli/doctor-check.js";
export * from "./api/effect.js";
export * from "./experiment/schema.js";
export * from "./experiment/plan.js";
export * from "./experiment/run.js";
export * from "./experiment/manifest.js";
export * from "./experiment/function-judge.js";
export { ExperimentInputError } from "./experiment/errors.js";
export { type RunningServer, type ServeOptions, startServer } from "./serve/server.js";
export { type ServedModelOptions, ServedModels, ServeConfigError } from "./serve/models.js";
export { writeReport, type WrittenReport } from "./report/html.js";
export * from "./organism/index.js";
