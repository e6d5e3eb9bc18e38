/** Optimizers (AdamW, SGD), their shared contract, and gradient clipping. */
export * from "./adamw.js";
export * from "./clip.js";
export * from "./optimizer.js";
export * from "./sgd.js";
