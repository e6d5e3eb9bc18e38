// Where --adapter points: one PEFT directory, a comma list, a run directory with RUN/adapter/ (one adapter)
// or RUN/adapter/<name>/ (several, sorted by name), or a directory of adapter directories; clear errors
// otherwise; loading gives unique names and frees what it loaded when one fails.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapters, resolveAdapterDirs } from "../../src/adapters/adapter-dirs.js";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { savePeftAdapter } from "../../src/adapters/peft.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { makeTinyModel } from "../helpers/tiny-model.js";

let work: string;
let model: LoadedModel;
const config = (dir: string) => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter_config.json"), "{}");
};

beforeAll(() => {
  let modelDir: string;
  ({ work, modelDir } = makeTinyModel("emlab-adapter-dirs-"));
  model = loadModel(modelDir);
});
afterAll(() => {
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe("resolveAdapterDirs", () => {
  it("one directory, a run directory with one or several adapters, a directory of adapters, a comma list", () => {
    config(join(work, "plain"));
    config(join(work, "run1", "adapter"));
    config(join(work, "run2", "adapter", "l29"));
    config(join(work, "run2", "adapter", "l15"));
    mkdirSync(join(work, "run2", "adapter", "notes"), { recursive: true });
    config(join(work, "many", "b"));
    config(join(work, "many", "a"));
    expect(resolveAdapterDirs(join(work, "plain"))).toEqual([join(work, "plain")]);
    expect(resolveAdapterDirs(join(work, "run1"))).toEqual([join(work, "run1", "adapter")]);
    expect(resolveAdapterDirs(join(work, "run2"))).toEqual([join(work, "run2", "adapter", "l15"), join(work, "run2", "adapter", "l29")]);
    expect(resolveAdapterDirs(join(work, "many"))).toEqual([join(work, "many", "a"), join(work, "many", "b")]);
    expect(resolveAdapterDirs(`${join(work, "plain")}, ${join(work, "run1")}`)).toEqual([
      join(work, "plain"),
      join(work, "run1", "adapter"),
    ]);
  });

  it("a missing path, a directory without adapters and an empty spec are AdapterErrors naming the path", () => {
    mkdirSync(join(work, "empty"), { recursive: true });
    expect(() => resolveAdapterDirs(join(work, "nope"))).toThrow(`${join(work, "nope")}: no such adapter directory`);
    expect(() => resolveAdapterDirs(join(work, "empty"))).toThrow(/no adapter_config\.json here/);
    expect(() => resolveAdapterDirs(" , ")).toThrow(/no directory/);
  });
});

describe("loadPeftAdapters", () => {
  useLeakCheck();

  it("loads every adapter of a run directory under its directory name; a broken one frees those already loaded", () => {
    const run = join(work, "run3");
    for (const l of [0, 2]) {
      const a = LoraAdapter.create(
        model.spec,
        { r: 1, alpha: 2, targetModules: ["down_proj"], layersToTransform: [l] },
        { initB: "random" },
      );
      savePeftAdapter(join(run, "adapter", `l${l}`), a);
      a.dispose();
    }
    const adapters = loadPeftAdapters(run, model);
    try {
      expect(adapters.map((a) => a.name)).toEqual(["l0", "l2"]);
      expect(adapters.map((a) => [...a.modules.keys()])).toEqual([["model.layers.0.mlp.down_proj"], ["model.layers.2.mlp.down_proj"]]);
    } finally {
      for (const a of adapters) a.dispose();
    }
    const single = loadPeftAdapters(join(run, "adapter", "l0"), model);
    expect(single.map((a) => a.name)).toEqual(["default"]);
    for (const a of single) a.dispose();
    config(join(run, "adapter", "l9-broken"));
    expect(() => loadPeftAdapters(run, model)).toThrow(/l9-broken/);
  });
});
