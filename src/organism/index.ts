/** The miniature model organism (see tasks.ts): its task world and the writer of its model and data. */
export * from "./tasks.js";
export * from "./write.js";
