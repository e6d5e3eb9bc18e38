/** The tensor layer: Tensor, creation, functional ops, autograd, scopes, errors, runtime. */
export * from "./autograd.js";
export * from "./creation.js";
export * from "./dtype.js";
export * from "./errors.js";
export * from "./functional.js";
export * from "./runtime.js";
export * from "./scope.js";
export * from "./tensor.js";
