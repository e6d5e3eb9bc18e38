/**
 * Where the libtorch of this build came from, as recorded by the native build (libtorch.json in the
 * build folder: beside $EMLAB_NATIVE's Release/ when that selects another build, else build/).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export function findLibtorchSource(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const selected = process.env.EMLAB_NATIVE ? [join(dirname(dirname(resolve(process.env.EMLAB_NATIVE))), "libtorch.json")] : [];
  for (const file of [
    ...selected,
    ...[resolve(here, "../.."), resolve(here, "../../..")].map((root) => join(root, "build/libtorch.json")),
  ]) {
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
