#!/usr/bin/env node
// Entry point of the `emlab` command: runs the compiled CLI (dist/, built by `npm install`).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "dist/cli/main.js");
if (!existsSync(entry)) {
  process.stderr.write("emlab: dist/ is missing; run `npm install` (or `npm run build`) in the emlab checkout first\n");
  process.exit(1);
}
try {
  const { main } = await import(pathToFileURL(entry).href);
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`emlab: ${error && error.message ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
