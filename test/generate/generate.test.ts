// generate() and chooseNext() on the tiny Hugging Face fixtures: greedy and left-padded decodes equal HF's for every
// family, KV-cache decoding equals full recomputation, seeded sampling (top-k / top-p limits), samples per prompt,
// per-row EOS stopping, maxNewTokens, input validation, tensor leaks, temperature checks and leftPad; decoding
// defaults from generation_config.json (greedy without one, explicit options override) and one row as a flat list.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate, type GenerateOptions, leftPad, resolveSampling } from "../../src/generate/generate.js";
import { IdShapeError } from "../../src/generate/ids.js";
import { ModelConfigError } from "../../src/models/errors.js";
import { chooseNext } from "../../src/generate/sampling.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { KvCache } from "../../src/nn/kv-cache.js";
import { liveTensorCount, type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { expectClose, values } from "../helpers/numeric.js";

const MODELS = join(import.meta.dirname, "..", "fixtures", "hf", "models");
const FAMILIES = ["qwen2", "qwen3", "llama", "gemma2", "gemma3"] as const;
type Family = (typeof FAMILIES)[number];

interface Fixture {
  model: LoadedModel;
  expected: Map<string, Tensor>;
}

const fixtures = new Map<Family, Fixture>();

beforeAll(() => {
  for (const family of FAMILIES) {
    const model = loadModel(join(MODELS, family));
    const { tensors } = loadSafetensors(join(MODELS, family, "expected.safetensors"));
    fixtures.set(family, { model, expected: tensors });
  }
});

afterAll(() => {
  for (const f of fixtures.values()) {
    f.model.dispose();
    for (const t of f.expected.values()) t.dispose();
  }
  fixtures.clear();
});

const fx = (family: Family): Fixture => fixtures.get(family)!;
const ints = (t: Tensor): number[][] => (t.toList() as bigint[][]).map((row) => row.map(Number));
const idsOf = (family: Family, name: string): number[][] => ints(fx(family).expected.get(name)!);
const idTensor = (rows: readonly (readonly number[])[]): Tensor =>
  tensor(
    BigInt64Array.from(rows.flat(), (v) => BigInt(v)),
    { shape: [rows.length, rows[0]!.length] },
  );

const greedy8: GenerateOptions = { greedy: true, maxNewTokens: 8, padTokenId: 0 };

useLeakCheck();

describe.each(FAMILIES)("greedy generate equals Hugging Face (%s)", (family) => {
  it("from greedy.input_ids", () => {
    const prompt = idsOf(family, "greedy.input_ids");
    const result = generate(fx(family).model.decoder, prompt, null, greedy8);
    expect(result.outputIds).toEqual(idsOf(family, "greedy.output_ids"));
    expect(result.newIds).toEqual(idsOf(family, "greedy.output_ids").map((r) => r.slice(prompt[0]!.length)));
    expect(result.finishReasons).toEqual(["length", "length"]);
    expect(result.promptIndex).toEqual([0, 1]);
  });

  it("from left-padded padded.input_ids / padded.attention_mask", () => {
    const result = generate(fx(family).model.decoder, idsOf(family, "padded.input_ids"), idsOf(family, "padded.attention_mask"), greedy8);
    expect(result.outputIds).toEqual(idsOf(family, "padded.greedy_output_ids"));
  });
});

describe.each(["qwen2", "gemma3"] as const)("KV-cache decoding equals full recomputation (%s)", (family) => {
  /** Checks a greedy decode against full forwards: argmax at each preceding position, then cached vs full logits. */
  function check(inputIds: number[][], mask: number[][] | null): void {
    const decoder = fx(family).model.decoder;
    const promptLength = inputIds[0]!.length;
    const { outputIds } = generate(decoder, inputIds, mask, greedy8);
    const total = outputIds[0]!.length;
    expect(total).toBe(promptLength + 8);
    const fullMask = mask === null ? null : mask.map((r) => [...r, ...new Array<number>(8).fill(1)]);
    tidy(() => {
      const ids = idTensor(outputIds);
      const attentionMask = fullMask === null ? null : idTensor(fullMask);
      const full = decoder.forward(ids, { attentionMask }).logits!;
      expect(full.shape).toEqual([2, total, 512]);
      // Every generated token is the argmax of the full forward's logits at the position before it.
      const argmax = ints(full.argmax(-1));
      outputIds.forEach((row, r) => {
        for (let j = promptLength; j < total; j++) expect(row[j], `row ${r} position ${j}`).toBe(argmax[r]![j - 1]);
      });
      // Incremental forward with a small cache (grows while decoding): prefill, then one token at a time.
      const cache = new KvCache(decoder.numLayers, 4);
      try {
        const maskUpTo = (n: number): Tensor | null => (attentionMask === null ? null : attentionMask.narrow(1, 0, n));
        const prefill = decoder.forward(ids.narrow(1, 0, promptLength), {
          cache,
          attentionMask: maskUpTo(promptLength),
          logits: "last",
        }).logits!;
        expect(prefill.shape).toEqual([2, 1, 512]);
        expectClose(values(prefill), values(full.narrow(1, promptLength - 1, 1)), 1e-4);
        for (let j = promptLength; j < total; j++) {
          const step = decoder.forward(ids.narrow(1, j, 1), { cache, attentionMask: maskUpTo(j + 1), logits: "last" }).logits!;
          expect(cache.length).toBe(j + 1);
          expectClose(values(step), values(full.narrow(1, j, 1)), 1e-4);
        }
      } finally {
        cache.dispose();
      }
    });
  }

  it("greedy.input_ids (no padding)", () => check(idsOf(family, "greedy.input_ids"), null));
  it("padded.input_ids (left padding)", () => check(idsOf(family, "padded.input_ids"), idsOf(family, "padded.attention_mask")));
});

describe("sampling", () => {
  const family: Family = "llama";
  const prompt = (): number[][] => idsOf(family, "greedy.input_ids");
  const sample = (options: Partial<GenerateOptions>, rows = prompt().slice(0, 1)) =>
    generate(fx(family).model.decoder, rows, null, { maxNewTokens: 8, padTokenId: 0, greedy: false, ...options });

  it("the same seed gives identical samples; different seeds give different ones (3 samples x 8 tokens)", () => {
    const a = sample({ seed: 1234, samples: 3 }).newIds;
    const b = sample({ seed: 1234, samples: 3 }).newIds;
    const c = sample({ seed: 4321, samples: 3 }).newIds;
    expect(a.length).toBe(3);
    for (const row of [...a, ...c]) expect(row.length).toBe(8);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    // The three samples of one prompt are not copies of each other either.
    expect(new Set(a.map((r) => r.join(","))).size).toBeGreaterThan(1);
  });

  it("topK = 1 and a tiny topP (1e-6) sample the greedy tokens", () => {
    const reference = idsOf(family, "greedy.output_ids");
    // Plain sampling with the same seed does not reproduce greedy, so the limits below are what make it greedy.
    expect(sample({ seed: 7 }, prompt()).outputIds).not.toEqual(reference);
    expect(sample({ seed: 7, topK: 1 }, prompt()).outputIds).toEqual(reference);
    expect(sample({ seed: 7, topP: 1e-6 }, prompt()).outputIds).toEqual(reference);
    expect(sample({ seed: 8, topP: 1e-6, temperature: 0.5 }, prompt()).outputIds).toEqual(reference);
  });
});

describe("samples per prompt", () => {
  const family: Family = "gemma3";

  it("K samples per prompt give K * rows rows grouped by prompt, each starting with its prompt", () => {
    const prompt = idsOf(family, "greedy.input_ids");
    const result = generate(fx(family).model.decoder, prompt, null, { maxNewTokens: 8, padTokenId: 0, samples: 3, seed: 99 });
    expect(result.outputIds.length).toBe(6);
    expect(result.newIds.length).toBe(6);
    expect(result.finishReasons).toEqual(new Array(6).fill("length"));
    expect(result.promptIndex).toEqual([0, 0, 0, 1, 1, 1]);
    result.outputIds.forEach((row, i) => {
      const p = Math.floor(i / 3);
      expect(row.length).toBe(16);
      expect(row.slice(0, 8)).toEqual(prompt[p]);
      expect(row.slice(8)).toEqual(result.newIds[i]);
    });
  });

  it("with greedy the K samples of a prompt are identical and equal HF's greedy decode", () => {
    const prompt = idsOf(family, "greedy.input_ids");
    const reference = idsOf(family, "greedy.output_ids");
    const result = generate(fx(family).model.decoder, prompt, null, { ...greedy8, samples: 3 });
    expect(result.promptIndex).toEqual([0, 0, 0, 1, 1, 1]);
    expect(result.outputIds).toEqual([reference[0], reference[0], reference[0], reference[1], reference[1], reference[1]]);
  });

  it("left-padded prompts with samples keep each prompt's padding and decode", () => {
    const reference = idsOf(family, "padded.greedy_output_ids");
    const result = generate(fx(family).model.decoder, idsOf(family, "padded.input_ids"), idsOf(family, "padded.attention_mask"), {
      ...greedy8,
      samples: 2,
    });
    expect(result.outputIds).toEqual([reference[0], reference[0], reference[1], reference[1]]);
  });
});

describe("stop on EOS per row", () => {
  // llama's unconstrained greedy decode: row 0's token at step 3 does not occur earlier in row 0.
  const family: Family = "llama";
  const PAD = 7;

  it("a row stops at its EOS, is padded afterwards, and the other row continues", () => {
    const prompt = idsOf(family, "greedy.input_ids");
    const unconstrained = idsOf(family, "greedy.output_ids").map((r) => r.slice(8));
    const eos = unconstrained[0]![3]!;
    expect(unconstrained[0]!.indexOf(eos)).toBe(3);
    for (const row of unconstrained) expect(row).not.toContain(PAD);

    // Expected per row from the unconstrained run: cut after the first EOS, pad the rest.
    const expectedNew = unconstrained.map((row) => {
      const at = row.indexOf(eos);
      return at < 0 ? row : row.slice(0, at + 1);
    });
    const expectedOut = expectedNew.map((ids, r) => [...prompt[r]!, ...ids, ...new Array<number>(8 - ids.length).fill(PAD)]);
    const expectedReasons = expectedNew.map((ids) => (ids.includes(eos) ? "eos" : "length"));

    const steps: number[][] = [];
    const result = generate(fx(family).model.decoder, prompt, null, {
      greedy: true,
      maxNewTokens: 8,
      eosTokenIds: [eos],
      padTokenId: PAD,
      onStep: (tokens) => steps.push([...tokens]),
    });
    expect(result.newIds[0]).toEqual(unconstrained[0]!.slice(0, 4));
    expect(result.newIds[0]![3]).toBe(eos);
    expect(result.finishReasons[0]).toBe("eos");
    expect(result.outputIds[0]!.slice(12)).toEqual([PAD, PAD, PAD, PAD]);
    expect(result.newIds).toEqual(expectedNew);
    expect(result.outputIds).toEqual(expectedOut);
    expect(result.finishReasons).toEqual(expectedReasons);
    // onStep sees each step's tokens, pads included.
    expect(steps).toEqual(Array.from({ length: 8 }, (_, s) => expectedOut.map((row) => row[8 + s]!)));
  });

  it("without padTokenId a finished row is padded with the first EOS id", () => {
    const prompt = idsOf(family, "greedy.input_ids");
    const unconstrained = idsOf(family, "greedy.output_ids").map((r) => r.slice(8));
    const eos = unconstrained[0]![3]!;
    const result = generate(fx(family).model.decoder, prompt, null, { greedy: true, maxNewTokens: 8, eosTokenIds: [eos, 511] });
    expect(result.outputIds[0]).toEqual([...prompt[0]!, ...unconstrained[0]!.slice(0, 4), eos, eos, eos, eos]);
  });

  it("stops early once every row has finished", () => {
    const prompt = idsOf(family, "greedy.input_ids");
    const unconstrained = idsOf(family, "greedy.output_ids").map((r) => r.slice(8));
    // Row 0 ends at step 1, row 1 at step 2 (their own tokens there).
    const eosIds = [unconstrained[0]![1]!, unconstrained[1]![2]!];
    for (const [r, at] of [
      [0, 1],
      [1, 2],
    ] as const)
      expect(unconstrained[r]!.findIndex((t) => eosIds.includes(t))).toBe(at);
    let calls = 0;
    const result = generate(fx(family).model.decoder, prompt, null, {
      greedy: true,
      maxNewTokens: 8,
      eosTokenIds: eosIds,
      padTokenId: PAD,
      onStep: () => calls++,
    });
    expect(result.newIds).toEqual([unconstrained[0]!.slice(0, 2), unconstrained[1]!.slice(0, 3)]);
    expect(result.finishReasons).toEqual(["eos", "eos"]);
    expect(calls).toBe(3);
  });
});

describe("limits and validation", () => {
  const family: Family = "qwen3";

  it.each([1, 3])("maxNewTokens = %i bounds the new tokens", (n) => {
    const prompt = idsOf(family, "greedy.input_ids");
    const reference = idsOf(family, "greedy.output_ids");
    const result = generate(fx(family).model.decoder, prompt, null, { ...greedy8, maxNewTokens: n });
    expect(result.newIds.map((r) => r.length)).toEqual([n, n]);
    expect(result.outputIds).toEqual(reference.map((r) => r.slice(0, 8 + n)));
    expect(result.finishReasons).toEqual(["length", "length"]);
  });

  it("rows of unequal length, an empty prompt or a mismatched mask are IdShapeErrors naming the argument", () => {
    const decoder = fx(family).model.decoder;
    expect(() =>
      generate(
        decoder,
        [
          [1, 2, 3],
          [4, 5],
        ],
        null,
        greedy8,
      ),
    ).toThrow(/^inputIds: row 1 has 2 ids, row 0 has 3/);
    expect(() => generate(decoder, [[]], null, greedy8)).toThrow(/^inputIds: row 0 is empty/);
    expect(() => generate(decoder, [], null, greedy8)).toThrow(IdShapeError);
    expect(() =>
      generate(
        decoder,
        [
          [1, 2],
          [3, 4],
        ],
        [[1, 1]],
        greedy8,
      ),
    ).toThrow(/^attentionMask: shape \[1, 2\] differs from inputIds \[2, 2\]/);
    expect(() =>
      generate(
        decoder,
        [
          [1, 2],
          [3, 4],
        ],
        [[1, 1], [1]],
        greedy8,
      ),
    ).toThrow(/^attentionMask: row 1/);
    expect(() =>
      generate(
        decoder,
        [
          [1, 2],
          [3, 4],
        ],
        [[1, 1], [1]],
        greedy8,
      ),
    ).toThrow(IdShapeError);
  });

  it("accepts one prompt as a flat list of ids (one row)", () => {
    const reference = idsOf(family, "greedy.output_ids");
    const prompt = idsOf(family, "greedy.input_ids")[0]!;
    expect(generate(fx(family).model.decoder, prompt, null, greedy8).outputIds).toEqual([reference[0]]);
  });

  it("leaves the live tensor count where it was (greedy, sampled, samples > 1, early EOS)", () => {
    const decoder = fx(family).model.decoder;
    const prompt = idsOf(family, "padded.input_ids");
    const mask = idsOf(family, "padded.attention_mask");
    const before = liveTensorCount();
    generate(decoder, prompt, mask, greedy8);
    generate(decoder, prompt, mask, { maxNewTokens: 5, seed: 3, samples: 3, topK: 20, topP: 0.9, temperature: 0.7 });
    generate(decoder, prompt, mask, { greedy: true, maxNewTokens: 8, eosTokenIds: [idsOf(family, "padded.greedy_output_ids")[0]![12]!] });
    expect(() => generate(decoder, prompt, mask, { maxNewTokens: 4, temperature: 0 })).toThrow(RangeError);
    expect(liveTensorCount()).toBe(before);
  });

  it("chooseNext with temperature <= 0 throws unless greedy", () => {
    tidy(() => {
      const logits = tensor(Float32Array.from([0.1, 2, -1, 0.5, 1.5, 0]), { shape: [2, 3] });
      for (const temperature of [0, -1, -0.5, Number.NaN]) {
        expect(() => chooseNext(logits, { temperature }), String(temperature)).toThrow(RangeError);
      }
      expect(Array.from(chooseNext(logits, { greedy: true, temperature: 0 }).toArray() as BigInt64Array, Number)).toEqual([1, 1]);
      expect(chooseNext(logits, { temperature: 0.5 }).shape).toEqual([2]);
    });
  });
});

describe("leftPad", () => {
  it("pads on the left with the pad id and marks the padding with mask 0", () => {
    expect(leftPad([[1, 2, 3], [4], [5, 6]], 9)).toEqual({
      ids: [
        [1, 2, 3],
        [9, 9, 4],
        [9, 5, 6],
      ],
      mask: [
        [1, 1, 1],
        [0, 0, 1],
        [0, 1, 1],
      ],
    });
    expect(leftPad([[8, 8]], 0)).toEqual({ ids: [[8, 8]], mask: [[1, 1]] });
  });

  it("reproduces the HF fixture's padded batch", () => {
    const ids = idsOf("qwen2", "padded.input_ids");
    const mask = idsOf("qwen2", "padded.attention_mask");
    const prompts = ids.map((row, r) => row.filter((_, j) => mask[r]![j] === 1));
    expect(prompts.map((p) => p.length)).toEqual([12, 8]);
    expect(leftPad(prompts, 0)).toEqual({ ids, mask });
  });
});

describe("decoding defaults like Hugging Face", () => {
  const family: Family = "llama";
  const prompt = (): number[][] => idsOf(family, "greedy.input_ids");
  const base = { maxNewTokens: 8, padTokenId: 0, eosTokenIds: [] as number[] };

  it("resolves explicit options over generation_config.json over greedy", () => {
    expect(resolveSampling({}, null)).toEqual({ greedy: true, temperature: 1, topP: 1, topK: 0 });
    expect(resolveSampling({}, { do_sample: true, temperature: 0.7, top_p: 0.8, top_k: 20 } as never)).toEqual({
      greedy: false,
      temperature: 0.7,
      topP: 0.8,
      topK: 20,
    });
    expect(resolveSampling({ greedy: true }, { do_sample: true } as never).greedy).toBe(true);
    expect(resolveSampling({ temperature: 0.5 }, { do_sample: false, top_p: 0.9 } as never)).toEqual({
      greedy: false,
      temperature: 0.5,
      topP: 0.9,
      topK: 0,
    });
    expect(resolveSampling({ topK: 5 }, null)).toEqual({ greedy: false, temperature: 1, topP: 1, topK: 5 });
  });

  it("a generation_config.json that samples at temperature 0 is a ModelConfigError naming the file; greedy or an explicit temperature is not", () => {
    const zero = { do_sample: true, temperature: 0 } as never;
    expect(() => resolveSampling({}, zero, "/m/generation_config.json")).toThrow(ModelConfigError);
    expect(() => resolveSampling({}, zero, "/m/generation_config.json")).toThrow(
      /^\/m\/generation_config\.json: temperature 0 cannot sample/,
    );
    expect(resolveSampling({ greedy: true }, zero).greedy).toBe(true);
    expect(resolveSampling({ temperature: 0.5 }, zero).temperature).toBe(0.5);
    const model = fx(family).model;
    const broken = { ...model, dir: "/m", generationConfig: { ...model.generationConfig!, do_sample: true, temperature: 0 } };
    expect(() => generate(broken, prompt(), null, base)).toThrow(ModelConfigError);
  });

  it("a model without sampling settings decodes greedily with no options; with do_sample it samples (seeded), unless greedy is asked", () => {
    const model = fx(family).model;
    const reference = idsOf(family, "greedy.output_ids");
    expect(model.generationConfig?.do_sample).toBeUndefined();
    // Plain options, LoadedModel or Decoder: greedy, and repeatable without a seed.
    expect(generate(model, prompt(), null, base).outputIds).toEqual(reference);
    expect(generate(model.decoder, prompt(), null, base).outputIds).toEqual(reference);
    const sampling = { ...model, generationConfig: { ...model.generationConfig!, do_sample: true, temperature: 1 } };
    const sampled = generate(sampling, prompt(), null, { ...base, seed: 7 }).outputIds;
    expect(sampled).not.toEqual(reference);
    expect(sampled).toEqual(generate(model, prompt(), null, { ...base, seed: 7, greedy: false }).outputIds);
    expect(generate(sampling, prompt(), null, { ...base, greedy: true }).outputIds).toEqual(reference);
    // top_k 1 from the config makes sampling greedy: the config's parameters are applied.
    const topK1 = { ...model, generationConfig: { ...model.generationConfig!, do_sample: true, top_k: 1 } };
    expect(generate(topK1, prompt(), null, { ...base, seed: 7 }).outputIds).toEqual(reference);
  });
});
