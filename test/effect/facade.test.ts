// The Promise facade for plain scripts: `await train(config)` trains a tiny LoRA run and leaves no live
// tensor; a config file that does not parse, or a dataset row that is bad, rejects with the typed
// error itself (its _tag), not a wrapper, also with live tensors back at baseline.
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { train } from "../../src/effect/facade.js";
import { liveTensorCount } from "../../src/tensor/index.js";
import { resolveRunConfig } from "../../src/train/config.js";
import { MEDICAL, makeTinyModel } from "../helpers/tiny-model.js";

let work = "";
let modelDir = "";
beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-effect-facade-", 5, 2));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const config = (name: string, train = MEDICAL) =>
  resolveRunConfig(
    {
      model: modelDir,
      output_dir: join(work, name),
      method: "lora",
      lora: { r: 2, alpha: 4, target_modules: ["q_proj", "v_proj"] },
      data: { train, max_length: 256 },
      training: { max_steps: 2, batch_size: 2, lr: 1e-3 },
    },
    `${name}.yaml`,
  );

describe("Promise facade", () => {
  it("await train(config) trains and frees everything", async () => {
    const before = liveTensorCount();
    const result = await train(config("ok"));
    expect(result.steps).toBe(2);
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    expect(existsSync(result.artefact)).toBe(true);
    expect(liveTensorCount()).toBe(before);
  });

  it("a config file that does not parse rejects with RunConfigError", async () => {
    const file = join(work, "bad.yaml");
    writeFileSync(file, "model: [\n");
    await expect(train(file)).rejects.toMatchObject({ _tag: "RunConfigError" });
  });

  it("a bad dataset row rejects with DatasetError (typed, not wrapped)", async () => {
    const data = join(work, "bad.jsonl");
    writeFileSync(data, '{"messages": 3}\n');
    const before = liveTensorCount();
    await expect(train(config("bad-data", data))).rejects.toMatchObject({ _tag: "DatasetError" });
    expect(liveTensorCount()).toBe(before);
  });
});
