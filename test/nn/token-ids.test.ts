// The token-id check at the decoder's forward entry (src/nn/token-ids.ts) on the tiny Qwen2 fixture (vocab 512):
// float ids, a negative id, an id >= vocab (in a decode-sized tensor and in one above 256 ids) and ids not shaped
// [batch, pos] are refused with a TokenIdError naming
// the dtype / the id and its [row, column]; valid ids (int64 and int32) still give Hugging Face's logits.
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { boundary } from "../../src/effect/errors.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { TokenIdError } from "../../src/nn/errors.js";
import { type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";

const DIR = join(import.meta.dirname, "..", "fixtures", "hf", "models", "qwen2");

let model: LoadedModel;
let expected: Map<string, Tensor>;

beforeAll(() => {
  model = loadModel(DIR);
  expected = loadSafetensors(join(DIR, "expected.safetensors")).tensors;
});
afterAll(() => {
  model?.dispose();
  for (const t of expected?.values() ?? []) t.dispose();
});
useLeakCheck();

const ids = (rows: number[][], dtype: "i64" | "i32" = "i64"): Tensor =>
  dtype === "i64"
    ? tensor(BigInt64Array.from(rows.flat(), BigInt), { shape: [rows.length, rows[0]!.length] })
    : tensor(Int32Array.from(rows.flat()), { shape: [rows.length, rows[0]!.length] });

/** The TokenIdError a forward pass on `input` throws (fails the test if it throws nothing or something else). */
const refusal = (input: () => Tensor): TokenIdError =>
  tidy(() => {
    try {
      model.decoder.forward(input());
    } catch (error) {
      expect(error).toBeInstanceOf(TokenIdError);
      return error as TokenIdError;
    }
    throw new Error("forward accepted the ids");
  });

describe("token ids at the forward entry", () => {
  it("float ids are refused, naming the dtype (before: truncated to integers silently)", () => {
    const e = refusal(() => tensor(Float32Array.from([1, 2.7, 3]), { shape: [1, 3] }));
    expect(e.message).toBe("token ids must be an int64 or int32 tensor, got f32");
    expect(e.id).toBeUndefined();
  });

  it("a negative id is refused with its value and [row, column]", () => {
    const e = refusal(() =>
      ids([
        [5, 6, 7, 8],
        [9, 10, 11, -1],
      ]),
    );
    expect(e.message).toBe("token id -1 at [1, 3] is outside the vocabulary 0..511");
    expect([e.id, e.position]).toEqual([-1, [1, 3]]);
  });

  it("an id equal to the vocabulary size is refused; the first offending one is named (int32 too)", () => {
    const e = refusal(() => ids([[3, 512, 600, 4]], "i32"));
    expect([e.id, e.position]).toEqual([512, [0, 1]]);
    expect(e.message).toContain("outside the vocabulary 0..511");
  });

  it("more than 256 ids (checked by a min/max reduction, not one host read): the offending id is still named; valid ones run", () => {
    const rows = [0, 1].map((r) => Array.from({ length: 200 }, (_, c) => (r * 200 + c) % 512));
    const bad = rows.map((row) => [...row]);
    bad[1]![150] = 600;
    const e = refusal(() => ids(bad));
    expect([e.id, e.position]).toEqual([600, [1, 150]]);
    tidy(() => {
      expect(model.decoder.forward(ids(rows), { logits: "last" }).logits!.shape).toEqual([2, 1, 512]);
    });
  });

  it("ids that are not [batch, pos] are refused", () => {
    expect(refusal(() => tensor(BigInt64Array.from([1n, 2n, 3n]))).message).toBe("token ids must have shape [batch, pos], got [3]");
  });

  it("a refusal is a typed failure inside an Effect program (boundary + catchTag)", () => {
    const outcome = Effect.runSync(
      boundary(() => tidy(() => void model.decoder.forward(ids([[0, 511, 512]])))).pipe(
        Effect.map(() => "ran"),
        Effect.catchTag("TokenIdError", (e) => Effect.succeed(`refused ${e.id}`)),
      ),
    );
    expect(outcome).toBe("refused 512");
  });

  it("valid ids (0 and 511 included) pass: int64 logits equal Hugging Face's, int32 ids give the same logits", () =>
    tidy(() => {
      const input = expected.get("input_ids")!;
      const logits = model.decoder.forward(input).logits!;
      expect(logits.sub(expected.get("logits")!).abs().max().toNumber()).toBeLessThanOrEqual(1e-4);
      const asInt32 = model.decoder.forward(input.to("i32")).logits!;
      expect(asInt32.sub(logits).abs().max().toNumber()).toBe(0);
      const edges = model.decoder.forward(ids([[0, 511]])).logits!;
      expect(edges.shape).toEqual([1, 2, 512]);
    }));
});
