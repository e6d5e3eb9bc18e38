// Property-based tests of the Hugging Face config reader and the families (src/models/hf-config.ts,
// config-checks.ts, families.ts): any edit of a fixture config.json (a field set to an arbitrary JSON value, or
// removed; nested rope parameters included) is either refused with a ModelConfigError / UnsupportedArchitectureError
// naming the file, or turned into a DecoderSpec whose every number is usable: positive integer sizes, heads that
// divide, finite positive epsilon, RoPE bases and scales, one layer spec per configured layer.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelConfigError, UnsupportedArchitectureError } from "../../src/models/errors.js";
import { familyFor } from "../../src/models/families.js";
import { readHfConfig } from "../../src/models/hf-config.js";
import type { DecoderSpec } from "../../src/nn/spec.js";
import { FUZZ_SEED, fuzzRuns } from "./budget.js";

const FAMILIES = ["qwen2", "qwen3", "llama", "gemma2", "gemma3"] as const;
const FIELDS = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "rms_norm_eps",
  "hidden_act",
  "hidden_activation",
  "rope_theta",
  "rope_scaling",
  "rope_parameters",
  "rope_local_base_freq",
  "sliding_window",
  "layer_types",
  "query_pre_attn_scalar",
  "attn_logit_softcapping",
  "final_logit_softcapping",
  "eos_token_id",
  "max_position_embeddings",
  "tie_word_embeddings",
  "architectures",
  "model_type",
  "sliding_window_pattern",
  "max_window_layers",
];

const numberArb = fc.oneof(
  fc.constantFrom(-1, 0, 0.5, 1, 1.5, 2, 3, 16, 64, 1e9, 1e308, -1e-6, Number.MAX_SAFE_INTEGER + 2),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -10, max: 300 }),
);
const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  numberArb,
  fc.constantFrom(null, true, false, "", "silu", "gelu", "gelu_pytorch_tanh", "full_attention", [], {}, ["Qwen2ForCausalLM"]),
  fc.array(fc.oneof(numberArb, fc.constantFrom("full_attention", "sliding_attention", "x")), { maxLength: 4 }),
  fc.dictionary(
    fc.constantFrom(
      "rope_type",
      "rope_theta",
      "factor",
      "low_freq_factor",
      "high_freq_factor",
      "original_max_position_embeddings",
      "full_attention",
    ),
    fc.oneof(numberArb, fc.constantFrom("default", "llama3", "linear", "yarn", null)),
  ),
);
type Edit = { field: string; value: unknown; remove: boolean };
const editArb: fc.Arbitrary<Edit> = fc.record({ field: fc.constantFrom(...FIELDS), value: valueArb, remove: fc.boolean() });

const positiveInteger = (n: number): boolean => Number.isSafeInteger(n) && n > 0;
const positiveFinite = (n: number): boolean => Number.isFinite(n) && n > 0;

function expectUsable(spec: DecoderSpec, config: Record<string, unknown>): void {
  for (const n of [spec.vocabSize, spec.hiddenSize, spec.intermediateSize, spec.numHeads, spec.numKvHeads, spec.headDim])
    expect(positiveInteger(n), `${n}`).toBe(true);
  expect(spec.numHeads % spec.numKvHeads).toBe(0);
  expect(positiveFinite(spec.rmsNormEps)).toBe(true);
  expect(positiveFinite(spec.attentionScale)).toBe(true);
  expect(spec.layers.length).toBe(config.num_hidden_layers);
  for (const layer of spec.layers) {
    expect(positiveFinite(layer.rope.theta)).toBe(true);
    if ("factor" in layer.rope) expect(positiveFinite(layer.rope.factor as number)).toBe(true);
    if (layer.slidingWindow !== null) expect(positiveInteger(layer.slidingWindow)).toBe(true);
  }
  for (const cap of [spec.attnSoftcap, spec.finalSoftcap]) if (cap !== null) expect(positiveFinite(cap)).toBe(true);
}

let dir = "";
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-fuzz-config-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("config.json edits (property)", () => {
  for (const family of FAMILIES) {
    it(`${family}: refused with a typed error naming the file, or a usable spec`, () => {
      const fixture = JSON.parse(readFileSync(join("test/fixtures/hf/models", family, "config.json"), "utf8")) as Record<string, unknown>;
      fc.assert(
        fc.property(fc.array(editArb, { minLength: 1, maxLength: 3 }), (edits) => {
          const config: Record<string, unknown> = structuredClone(fixture);
          for (const e of edits) {
            if (e.remove) delete config[e.field];
            else config[e.field] = e.value;
          }
          const modelDir = join(dir, `c${counter++}`);
          const file = join(modelDir, "config.json");
          mkdirSync(modelDir);
          writeFileSync(file, JSON.stringify(config));
          try {
            const read = readHfConfig(modelDir);
            const spec = familyFor(read, file).toSpec(read, file);
            expectUsable(spec, read as unknown as Record<string, unknown>);
          } catch (error) {
            if (!(error instanceof ModelConfigError || error instanceof UnsupportedArchitectureError)) throw error;
            expect(error.message).toContain(file);
          }
        }),
        { numRuns: fuzzRuns(60), seed: FUZZ_SEED },
      );
    });
  }
});
