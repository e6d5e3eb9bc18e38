/**
 * emlab's Effect layer: typed boundary errors, the `step` helper for the tensor hot path, scoped
 * constructors for every native resource, services and layers for what a program is configured
 * with, the evaluation recipe and the analyses as Effect programs, and the Promise facade for plain scripts.
 */
export * from "./analysis.js";
export * from "./analysis-programs.js";
export * from "./errors.js";
export * from "./evaluate.js";
export * from "./facade.js";
export * from "./resources.js";
export * from "./run-directory.js";
export * from "./run-promise.js";
export * from "./services.js";
export * from "./step.js";
export * from "./monitor-program.js";
export * from "./trajectory-program.js";
