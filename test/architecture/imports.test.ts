// Arrows point down: every relative import in src/ goes to a module on the same layer or a lower one
// (design.md §1: native binding < tensor < components < recipes < CLI). The layer of a module is
// its folder's, except for the few files listed by path (the primitives a lower layer needs from a
// folder that otherwise sits higher). Parsed from the source text, so type-only imports count too.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = "src";

/** Lower number = lower layer. A module may import only from layers <= its own. */
const LAYERS: [prefix: string, layer: number][] = [
  ["native/", 0],
  ["tensor/", 1],
  ["io/", 2],
  ["tokenizer/", 2],
  ["random/", 2],
  ["runtime/", 2],
  // The c10d process group wraps the addon only; the data-parallel component and launcher sit with recipes.
  ["distributed/process-group.ts", 2],
  // What the decoder uses from hooks: point names and the registry (hooks/cache.ts runs a decoder, so it sits higher).
  ["hooks/points.ts", 3],
  ["hooks/registry.ts", 3],
  ["hooks/interventions.ts", 3],
  ["nn/", 3],
  // The projection source models give their decoder (LoRA); loading/saving PEFT files sits above models.
  ["adapters/lora.ts", 4],
  ["adapters/adapter-set.ts", 4],
  ["models/", 5],
  ["adapters/", 6],
  ["optim/", 6],
  ["generate/", 6],
  ["hooks/", 6],
  ["train/", 7],
  ["eval/", 7],
  ["analysis/", 8],
  ["recipes/", 9],
  // Scoped constructors, services/layers, the eval program and the Promise facade (over recipes/train).
  ["effect/", 9],
  ["organism/", 9],
  ["serve/", 9],
  ["distributed/", 9],
  ["experiment/", 10],
  ["report/", 11],
  ["cli/", 12],
  ["", 13], // src/index.ts and other top-level entry points
];

/** Upward imports still to be removed (each entry is a debt; the list only shrinks). */
const KNOWN_UPWARD = new Set<string>([]);

function layerOf(module: string): number {
  // The longest matching prefix wins (a file entry before its folder's).
  let best: [string, number] | null = null;
  for (const entry of LAYERS) if (module.startsWith(entry[0]) && (best === null || entry[0].length > best[0].length)) best = entry;
  return best![1];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(path) : e.name.endsWith(".ts") ? [path] : [];
  });
}

/** Relative import specifiers of a file: `import/export ... from "x"`, `import "x"`, `import("x")`. */
function relativeImports(text: string): string[] {
  const specifiers: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(?\s*)["'](\.[^"']+)["']/g)) specifiers.push(m[1]!);
  return specifiers;
}

const files = sourceFiles(SRC).map((f) => relative(SRC, f));
const edges = files.flatMap((from) =>
  relativeImports(readFileSync(join(SRC, from), "utf8")).map((spec) => ({
    from,
    to: normalize(join(dirname(from), spec)).replace(/\.js$/, ".ts"),
  })),
);

describe("import direction across src/", () => {
  it("finds the source files and their imports (the parser works)", () => {
    expect(files).toContain("nn/decoder.ts");
    expect(edges.some((e) => e.from === "nn/decoder.ts" && e.to === "tensor/index.ts")).toBe(true);
    expect(edges.length).toBeGreaterThan(200);
  });

  it("every import goes to the same layer or a lower one", () => {
    const upward = edges
      .filter((e) => layerOf(e.to) > layerOf(e.from) && !KNOWN_UPWARD.has(`${e.from} -> ${e.to}`))
      .map((e) => `${e.from} (layer ${layerOf(e.from)}) -> ${e.to} (layer ${layerOf(e.to)})`);
    expect(upward).toEqual([]);
  });

  it("nn/ imports nothing from adapters/ or models/", () => {
    const offending = edges.filter((e) => e.from.startsWith("nn/") && (e.to.startsWith("adapters/") || e.to.startsWith("models/")));
    expect(offending).toEqual([]);
  });

  it("only src/native/ loads native addons (createRequire of a .node file)", () => {
    const loaders = files.filter((f) => /createRequire|process\.dlopen/.test(readFileSync(join(SRC, f), "utf8")));
    expect(loaders).toContain("native/addon.ts");
    expect(loaders.filter((f) => !f.startsWith("native/"))).toEqual([]);
  });
});
