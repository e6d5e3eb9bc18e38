// The fixture generator (scripts/peer/make_fixtures.py) runs in the peer environment: it regenerates
// the test/fixtures/hf layout into a temporary folder, emlab matches every regenerated model and
// adapter, and the regenerated tokenizer fixtures equal the committed ones.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../src/adapters/peft.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { tidy } from "../../src/tensor/index.js";
import { peerPython, peerUnavailable, peerWorkDir } from "./peer-env.js";

const unavailable = peerUnavailable();
const FAMILIES = ["qwen2", "qwen3", "llama", "gemma2", "gemma3"];

describe.skipIf(unavailable !== null)("fixture generator in the peer environment", () => {
  const out = unavailable ? "" : peerWorkDir("fixtures");
  beforeAll(() => {
    const run = spawnSync(peerPython, ["scripts/peer/make_fixtures.py", out, "--tokenizers"], {
      encoding: "utf8",
      env: { ...process.env, HF_HUB_OFFLINE: "1", HF_HUB_DISABLE_PROGRESS_BARS: "1", TRANSFORMERS_VERBOSITY: "error" },
    });
    if (run.status !== 0) throw new Error(`make_fixtures.py failed:\n${run.stderr.slice(-4000)}`);
  }, 900_000);

  for (const family of FAMILIES) {
    it(`${family}: emlab matches the regenerated fixture`, () => {
      const dir = join(out, "models", family);
      const model = loadModel(dir);
      const { tensors } = loadSafetensors(join(dir, "expected.safetensors"));
      try {
        const err = tidy(() => model.decoder.forward(tensors.get("input_ids")!).logits!.sub(tensors.get("logits")!).abs().max().toNumber());
        expect(err).toBeLessThanOrEqual(1e-4);
      } finally {
        model.dispose();
        for (const t of tensors.values()) t.dispose();
      }
    });
  }

  it("emlab matches the regenerated PEFT adapters", () => {
    const model = loadModel(join(out, "models", "qwen2"));
    try {
      for (const name of ["qwen2_lora_r4_all", "qwen2_lora_r1_l1_down_rslora"]) {
        const dir = join(out, "adapters", name);
        const adapter = loadPeftAdapter(dir, model);
        const { tensors } = loadSafetensors(join(dir, "expected.safetensors"));
        model.decoder.adapters.attach(adapter);
        const err = tidy(() => model.decoder.forward(tensors.get("input_ids")!).logits!.sub(tensors.get("logits")!).abs().max().toNumber());
        model.decoder.adapters.detach(adapter);
        for (const t of [...adapter.parameters(), ...tensors.values()]) t.dispose();
        expect(err, name).toBeLessThanOrEqual(1e-4);
      }
    } finally {
      model.dispose();
    }
  });

  it("regenerated tokenizer fixtures equal the committed ones", () => {
    for (const name of ["qwen3", "llama3_1", "gemma3"]) {
      const fresh = JSON.parse(readFileSync(join(out, "tokenizers", `${name}.json`), "utf8"));
      const committed = JSON.parse(readFileSync(join("test", "fixtures", "hf", "tokenizers", `${name}.json`), "utf8"));
      expect(fresh, name).toEqual(committed);
    }
  });
});

if (unavailable) it.skip(`fixture generator test skipped: ${unavailable}`, () => {});
