/** Where the libtorch of this build came from, as recorded by the native build (build/libtorch.json). */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export function findLibtorchSource(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const root of [resolve(here, "../.."), resolve(here, "../../..")]) {
    const file = join(root, "build/libtorch.json");
    if (existsSync(file)) {
      try {
        const info = JSON.parse(readFileSync(file, "utf8")) as { source?: string; torchDir?: string };
        return `${info.source ?? "unknown"}: ${info.torchDir ?? "?"}`;
      } catch {
        return "unknown (unreadable build/libtorch.json)";
      }
    }
  }
  return "unknown";
}
