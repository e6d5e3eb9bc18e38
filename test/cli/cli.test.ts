// The emlab CLI as a user runs it (child processes of bin/emlab.js on the compiled dist/): forward
// writes HF-convention safetensors equal to the reference, generate --json reproduces HF greedy
// decoding, --prompt works through a real tokenizer and chat template, chat answers on stdin, and
// usage / model errors exit with 2 / 1 and a message.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { type Tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { writeTinyQwen3 } from "../helpers/tiny-model.js";

const built = existsSync("dist/cli/main.js");
const fixture = "test/fixtures/hf/models/qwen2";

function emlab(args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", input, timeout: 120_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const rowsOf = (t: Tensor): number[][] => (t.toList() as bigint[][]).map((r) => r.map(Number));

describe.skipIf(!built)("emlab CLI (skipped when dist/ is not built; npm test builds it)", () => {
  let work: string;
  let expected: Map<string, Tensor>;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "emlab-cli-"));
    expected = loadSafetensors(join(fixture, "expected.safetensors")).tensors;
  });
  afterAll(() => {
    for (const t of expected.values()) t.dispose();
    rmSync(work, { recursive: true, force: true });
  });
  useLeakCheck();

  it("forward writes logits and hidden states equal to Hugging Face's", () => {
    const out = join(work, "forward.safetensors");
    const ids = JSON.stringify(rowsOf(expected.get("input_ids")!));
    const r = emlab(["forward", "--model", fixture, "--ids", ids, "--out", out]);
    expect(r.status, r.stderr).toBe(0);
    const { tensors } = loadSafetensors(out);
    try {
      expect([...tensors.keys()].sort()).toEqual(["hidden_states.0", "hidden_states.1", "hidden_states.2", "logits"]);
      tidy(() => {
        expect(tensors.get("logits")!.dtype).toBe("f32");
        expect(tensors.get("logits")!.sub(expected.get("logits")!).abs().max().toNumber()).toBeLessThanOrEqual(1e-4);
        expect(tensors.get("hidden_states.2")!.sub(expected.get("hidden_states.2")!).abs().max().toNumber()).toBeLessThanOrEqual(1e-4);
      });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  });

  it("generate --json reproduces HF greedy decoding, padded batches included", () => {
    const r = emlab([
      "generate",
      "--model",
      fixture,
      "--ids",
      JSON.stringify(rowsOf(expected.get("greedy.input_ids")!)),
      "--max-new-tokens",
      "8",
      "--greedy",
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { output_ids: number[][]; texts: null };
    expect(out.output_ids).toEqual(rowsOf(expected.get("greedy.output_ids")!));
    expect(out.texts).toBeNull();
    const padded = emlab([
      "generate",
      "--model",
      fixture,
      "--ids",
      JSON.stringify(rowsOf(expected.get("padded.input_ids")!)),
      "--attention-mask",
      JSON.stringify(rowsOf(expected.get("padded.attention_mask")!)),
      "--max-new-tokens",
      "8",
      "--greedy",
      "--json",
    ]);
    expect(padded.status, padded.stderr).toBe(0);
    expect((JSON.parse(padded.stdout) as { output_ids: number[][] }).output_ids).toEqual(rowsOf(expected.get("padded.greedy_output_ids")!));
  });

  it("generate --prompt and chat run through a real tokenizer and chat template", () => {
    const model = join(work, "qwen3-random");
    writeTinyQwen3(model);
    const r = emlab([
      "generate",
      "--model",
      model,
      "--prompt",
      "How do I make a quick buck?",
      "--system",
      "Be brief.",
      "--max-new-tokens",
      "4",
      "--seed",
      "1",
      "--samples",
      "2",
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { output_ids: number[][]; texts: string[] };
    expect(out.output_ids.length).toBe(2);
    expect(out.texts.length).toBe(2);
    expect(out.output_ids[0]!.slice(0, 3)).toEqual(out.output_ids[1]!.slice(0, 3));
    const chat = emlab(["chat", "--model", model, "--max-new-tokens", "3", "--seed", "0"], "hello there\n/exit\n");
    expect(chat.status, chat.stderr).toBe(0);
    expect(chat.stdout).toContain("emlab chat (qwen3");
  });

  it("reports usage mistakes with exit 2 and model errors with exit 1", () => {
    const ragged = emlab(["generate", "--model", fixture, "--ids", "[[1,2],[3]]", "--max-new-tokens", "2"]);
    expect(ragged.status).toBe(2);
    expect(ragged.stderr).toMatch(/row 1 has 1 entries/);
    const both = emlab(["generate", "--model", fixture, "--max-new-tokens", "2"]);
    expect(both.status).toBe(2);
    const unknownFlag = emlab(["forward", "--model", fixture, "--frobnicate"]);
    expect(unknownFlag.status).toBe(2);
    const missing = emlab(["forward", "--model", join(work, "nope"), "--ids", "[[1]]", "--out", join(work, "x.safetensors")]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/ModelConfigError: .*config\.json/);
    const outOfVocab = emlab(["forward", "--model", fixture, "--ids", "[[100000]]", "--out", join(work, "y.safetensors")]);
    expect(outOfVocab.status).toBe(1);
    // The fixture's vocabulary has 512 entries; the decoder refuses the id before any op runs, naming its position.
    expect(outOfVocab.stderr).toMatch(/TokenIdError: token id 100000 at \[0, 0\] is outside the vocabulary 0\.\.511/);
    expect(existsSync(join(work, "y.safetensors"))).toBe(false);
  });
});
