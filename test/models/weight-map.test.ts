// Covers the shard paths of src/models/weights.ts: a model.safetensors.index.json whose weight_map
// names a file outside the model directory (`../outside/x.safetensors`, an absolute path, a
// subdirectory escape) is a ModelWeightsError naming the entry, and nothing outside is read.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { ModelWeightsError } from "../../src/models/errors.js";
import { indexWeights } from "../../src/models/weights.js";
import { tensor } from "../../src/tensor/index.js";

let root = "";
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "emlab-weight-map-"));
  mkdirSync(join(root, "outside"));
  mkdirSync(join(root, "model"));
  const t = tensor([1, 2]);
  try {
    saveSafetensors(join(root, "outside", "x.safetensors"), { "model.norm.weight": t });
    saveSafetensors(join(root, "model", "model-00001-of-00001.safetensors"), { "model.norm.weight": t });
  } finally {
    t.dispose();
  }
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const withIndex = (file: unknown): string => {
  writeFileSync(
    join(root, "model", "model.safetensors.index.json"),
    JSON.stringify({ metadata: {}, weight_map: { "model.norm.weight": file } }),
  );
  return join(root, "model");
};

describe("weight_map entries", () => {
  it("a shard beside the index is read", () => {
    const { sources } = indexWeights(withIndex("model-00001-of-00001.safetensors"));
    expect([...sources.keys()]).toEqual(["model.norm.weight"]);
  });

  for (const entry of [
    "../outside/x.safetensors",
    join("..", "..", "x.safetensors"),
    "/etc/passwd.safetensors",
    "sub/../../outside/x.safetensors",
    7,
  ]) {
    it(`refuses ${JSON.stringify(entry)}`, () => {
      let error: unknown;
      try {
        indexWeights(withIndex(entry));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ModelWeightsError);
      expect((error as Error).message).toContain("weight_map entry");
    });
  }
});
