// Issue 13 items 9 and 11 below the CLI: LoRA tensors stored as integers and malformed adapter configs are
// AdapterErrors; a monitor with a NaN, infinite or zero direction (or a NaN threshold) is refused instead of never
// alarming; seeds that differ by 2^32 give different streams; generation past max_position_embeddings or over the
// memory budget is refused before any tensor is allocated, with the estimate compared to an independent count.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdapterError, loadPeftAdapter } from "../../src/adapters/peft.js";
import { DirectionError } from "../../src/analysis/files.js";
import { monitorGeneration } from "../../src/analysis/monitor.js";
import { seededRandom } from "../../src/eval/stats.js";
import { estimateGenerationBytes, MemoryBudgetError } from "../../src/generate/budget.js";
import { generate } from "../../src/generate/generate.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { ContextLengthError } from "../../src/nn/errors.js";
import { liveTensorCount, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const FIXTURE = "test/fixtures/hf/models/qwen2";
const ADAPTER = "test/fixtures/hf/adapters/qwen2_lora_r4_all";

let work = "";
let model: LoadedModel;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-input-refusals-"));
  model = loadModel(FIXTURE);
});
afterAll(() => {
  model.dispose();
  rmSync(work, { recursive: true, force: true });
});
useLeakCheck();

let counter = 0;
function adapterCopy(edit: (dir: string) => void): string {
  const dir = join(work, `adapter-${counter++}`);
  mkdirSync(dir);
  for (const name of ["adapter_config.json", "adapter_model.safetensors"]) copyFileSync(join(ADAPTER, name), join(dir, name));
  edit(dir);
  return dir;
}

function adapterError(dir: string): AdapterError {
  try {
    loadPeftAdapter(dir, model).dispose();
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterError);
    return error as AdapterError;
  }
  throw new Error("the adapter loaded");
}

describe("LoRA adapters", () => {
  it("the control: the fixture adapter loads", () => {
    loadPeftAdapter(ADAPTER, model).dispose();
  });

  it("a lora_A stored as i32 is refused, naming the tensor (not cast to float)", () => {
    const dir = adapterCopy((d) => {
      const file = join(d, "adapter_model.safetensors");
      tidy(() => {
        const { tensors } = loadSafetensors(file);
        const first = [...tensors.keys()].find((k) => k.includes("lora_A"))!;
        saveSafetensors(file, new Map([...tensors].map(([k, t]) => [k, k === first ? t.to("i32") : t])));
      });
    });
    expect(adapterError(dir).message).toMatch(/lora_A.* is stored as i32; LoRA tensors must be floating point/);
  });

  for (const [name, edit, pattern] of [
    ["adapter_config.json is null", (c: string) => writeFileSync(c, "null"), /not a JSON object/],
    [
      "r is 1e308",
      (c: string) => writeFileSync(c, JSON.stringify({ ...JSON.parse(readFileSync(c, "utf8")), r: 1e308 })),
      /r must be a positive integer/,
    ],
    [
      "lora_alpha is NaN-like (a string)",
      (c: string) => writeFileSync(c, JSON.stringify({ ...JSON.parse(readFileSync(c, "utf8")), lora_alpha: "16" })),
      /lora_alpha must be a finite number/,
    ],
    [
      "lora_dropout is 1.5",
      (c: string) => writeFileSync(c, JSON.stringify({ ...JSON.parse(readFileSync(c, "utf8")), lora_dropout: 1.5 })),
      /lora_dropout/,
    ],
    [
      "layers_to_transform holds -1",
      (c: string) => writeFileSync(c, JSON.stringify({ ...JSON.parse(readFileSync(c, "utf8")), layers_to_transform: [-1] })),
      /layers_to_transform/,
    ],
  ] as const) {
    it(`${name}: AdapterError`, () => {
      const dir = adapterCopy((d) => edit(join(d, "adapter_config.json")));
      expect(adapterError(dir).message).toMatch(pattern);
    });
  }
});

describe("monitor directions", () => {
  const prompt = [[1, 2, 3]];
  for (const [name, values, threshold] of [
    ["a NaN direction", [Number.NaN, 1], 0],
    ["an infinite direction", [Number.POSITIVE_INFINITY, 1], 0],
    ["a zero direction", [0, 0], 0],
  ] as const) {
    it(`${name} is a DirectionError before generating`, () => {
      const d = model.spec.hiddenSize;
      const direction = tensor(Float32Array.from({ length: d }, (_, i) => values[i % 2]!));
      try {
        expect(() =>
          monitorGeneration(model.decoder, prompt, null, { layer: 0, direction, threshold, maxNewTokens: 2, greedy: true }),
        ).toThrow(DirectionError);
      } finally {
        direction.dispose();
      }
    });
  }

  it("a NaN threshold is refused", () => {
    const direction = tensor(Float32Array.from({ length: model.spec.hiddenSize }, () => 1));
    try {
      expect(() =>
        monitorGeneration(model.decoder, prompt, null, { layer: 0, direction, threshold: Number.NaN, maxNewTokens: 2, greedy: true }),
      ).toThrow(/threshold is NaN/);
    } finally {
      direction.dispose();
    }
  });
});

describe("seeds", () => {
  const stream = (seed: number): number[] => {
    const random = seededRandom(seed);
    return Array.from({ length: 4 }, random);
  };
  it("seeds differing by 2^32 (and -1 vs 2^32 - 1) give different streams; seeds below 2^32 keep their old streams", () => {
    expect(stream(2 ** 32)).not.toEqual(stream(0));
    expect(stream(5 + 2 ** 40)).not.toEqual(stream(5));
    expect(stream(-1)).not.toEqual(stream(2 ** 32 - 1));
    // Seed 0 still starts mulberry32 from state 0 (the first output the generator gave before the fix).
    expect(stream(0)[0]).toBeCloseTo(0.26642920868471265, 12);
  });
  it("non-integer and unsafe seeds are refused", () => {
    expect(() => seededRandom(1.5)).toThrow(RangeError);
    expect(() => seededRandom(1e308)).toThrow(RangeError);
  });
});

describe("generation budget", () => {
  it("a prompt past max_position_embeddings is a ContextLengthError, with no tensor created", () => {
    const limit = model.spec.maxPositions!;
    expect(limit).toBe(256);
    const live = liveTensorCount();
    expect(() =>
      generate(model.decoder, [Array.from({ length: limit }, (_, i) => i % 100)], null, { maxNewTokens: 1, greedy: true }),
    ).toThrow(ContextLengthError);
    expect(liveTensorCount()).toBe(live);
  });

  it("the estimate counts the KV cache of every sample (an independent count for the fixture's shape)", () => {
    const s = model.spec;
    const shape = { rows: 1, promptLength: 10, maxNewTokens: 6, samples: 1000 };
    const kv = 2 * s.layers.length * s.numKvHeads * s.headDim * 4 * 16 * 1000;
    expect(estimateGenerationBytes(s, "f32", shape)).toBeGreaterThanOrEqual(kv);
  });

  it("samples beyond the memory budget are a MemoryBudgetError", () => {
    const previous = process.env.EMLAB_MEMORY_LIMIT_MB;
    process.env.EMLAB_MEMORY_LIMIT_MB = "64";
    try {
      expect(() => generate(model.decoder, [[1, 2, 3]], null, { maxNewTokens: 8, greedy: true, samples: 1_000_000 })).toThrow(
        MemoryBudgetError,
      );
    } finally {
      if (previous === undefined) delete process.env.EMLAB_MEMORY_LIMIT_MB;
      else process.env.EMLAB_MEMORY_LIMIT_MB = previous;
    }
  });
});
