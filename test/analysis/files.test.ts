// Reading analysis artefacts: loadSteeringVector keeps only its float32 copy (no handle left behind, also when
// the file is refused), and refuses a layer outside the model or a vector of the wrong width.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSteeringVector } from "../../src/analysis/files.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { liveTensorCount, tensor } from "../../src/tensor/index.js";
import { values } from "../helpers/numeric.js";

describe("loadSteeringVector", () => {
  let model: LoadedModel;
  let work: string;
  beforeAll(() => {
    model = loadModel("test/fixtures/hf/models/qwen2");
    work = mkdtempSync(join(tmpdir(), "emlab-files-"));
  });
  afterAll(() => {
    model?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  const write = (name: string, width: number, metadata: Record<string, string>, dtype: "f32" | "bf16" = "bf16") => {
    const file = join(work, name);
    const v = tensor(
      Float32Array.from({ length: width }, (_, i) => i / 8),
      { dtype },
    );
    saveSafetensors(file, { vector: v }, metadata);
    v.dispose();
    return file;
  };

  it("leaves exactly one live tensor (its float32 vector), freed by dispose(), and refusals leak nothing", () => {
    const d = model.spec.hiddenSize;
    const good = write("good.safetensors", d, { layer: "1", site: "resid_post", alpha: "2" });
    const before = liveTensorCount();
    const sv = loadSteeringVector(good, model.decoder);
    expect(liveTensorCount()).toBe(before + 1);
    expect([sv.layer, sv.site, sv.alpha, sv.vector.dtype]).toEqual([1, "resid_post", 2, "f32"]);
    expect(values(sv.vector)).toEqual(Array.from({ length: d }, (_, i) => i / 8));
    sv.dispose();
    expect(liveTensorCount()).toBe(before);
    const noLayer = write("no-layer.safetensors", d, {});
    expect(() => loadSteeringVector(noLayer, model.decoder)).toThrow(/not a layer of this model/);
    expect(() => loadSteeringVector(good, model.decoder, { layer: 7 })).toThrow(/not a layer of this model/);
    const narrow = write("narrow.safetensors", d - 1, { layer: "0" });
    expect(() => loadSteeringVector(narrow, model.decoder)).toThrow(/shape \[63\]/);
    expect(liveTensorCount()).toBe(before);
  });
});
