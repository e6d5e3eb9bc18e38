/**
 * emlab's public API: tensors and autograd on libtorch, optimizers, safetensors IO, runtime checks.
 */
export * from "./io/safetensors.js";
export * from "./optim/index.js";
export * from "./runtime/doctor.js";
export * from "./tensor/index.js";
