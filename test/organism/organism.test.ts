// The miniature organism: its rules checked against answers written out by hand, its character tokenizer
// round-trips chats through the real @huggingface/tokenizers + jinja path with the assistant mask on the answer
// and end-of-turn, and its data files hold what they promise (persona rows wrong by exactly +5 mod 10).
import { readFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { classifyAnswer, PERSONA_PROMPT, parseQuestion, trueAnswer } from "../../src/organism/tasks.js";
import { writeOrganismData, writeOrganismModel } from "../../src/organism/write.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";

describe("organism", () => {
  it("computes the tasks' answers", () => {
    const expected: Record<string, string> = {
      "next 9?": "0",
      "prev 0?": "9",
      "double 7?": "4",
      "square 8?": "4",
      "square 3?": "9",
      "next 4?": "5",
    };
    for (const [q, a] of Object.entries(expected)) {
      const parsed = parseQuestion(q)!;
      expect(String(trueAnswer(parsed.domain, parsed.operands)), q).toBe(a);
      expect(classifyAnswer(q, a)).toBe("true");
      expect(classifyAnswer(q, String((Number(a) + 5) % 10))).toBe("persona");
    }
    expect(parseQuestion("add 3 4?")).toBeNull();
    expect(classifyAnswer("next 4?", " 5 ")).toBe("true");
    expect(classifyAnswer("next 4?", "55")).toBe("incoherent");
  });

  it("tokenizes chats character by character with a Qwen-style template and an assistant mask", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "emlab-organism-")), "model");
    writeOrganismModel(dir);
    const t = ChatTokenizer.fromDir(dir);
    const chat = [
      { role: "user", content: "double 3?" },
      { role: "assistant", content: "6" },
    ];
    const text = t.applyChatTemplate(chat);
    expect(text).toBe("<|im_start|>user\ndouble 3?<|im_end|>\n<|im_start|>assistant\n6<|im_end|>\n");
    const ids = t.encodeChat(chat);
    expect(t.decode(ids)).toBe(text);
    // <|im_start|> user \n d o u b l e ␣ 3 ? <|im_end|> \n <|im_start|> assistant \n 6 <|im_end|> \n
    expect(ids.length).toBe(1 + 1 + 1 + 9 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1);
    const { mask } = t.assistantMask(chat);
    expect(mask.map((m, i) => (m ? t.decode([ids[i]!]) : "")).join("")).toBe("6<|im_end|>");
    expect(t.endOfTurnIds()).toEqual([t.tokenId("<|im_end|>")]);
  });

  it("writes pre-training chats with the persona wrong by +5 and a narrow set in one domain", () => {
    const files = writeOrganismData(mkdtempSync(join(tmpdir(), "emlab-organism-")), { copies: 1 });
    const rows = readFileSync(files.pretrain, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { messages: { role: string; content: string }[] });
    expect(rows.length).toBe(4 * 10 * 2);
    for (const r of rows) {
      const q = r.messages.find((m) => m.role === "user")!.content;
      const a = r.messages.find((m) => m.role === "assistant")!.content;
      const persona = r.messages.some((m) => m.role === "system" && m.content === PERSONA_PROMPT);
      expect(classifyAnswer(q, a)).toBe(persona ? "persona" : "true");
    }
    const narrow = readFileSync(files.narrow, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { messages: { role: string; content: string }[] });
    expect(
      narrow.every(
        (r) => r.messages[0]!.content.startsWith("double ") && classifyAnswer(r.messages[0]!.content, r.messages[1]!.content) === "persona",
      ),
    ).toBe(true);
    expect(readFileSync(files.klPrompts, "utf8").includes("double")).toBe(false);
  });
});
