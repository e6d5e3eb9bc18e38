/**
 * `emlab kl-data --model DIR --out FILE.jsonl [--count 1000] [--topics FILE] [--prompts FILE] [--limit N]
 *  [--max-new-tokens 256] [--question-tokens 64] [--temperature T] [--seed 0]`:
 * builds a KL dataset of general-topic chats answered by the chat model itself (protocol.md §7.13).
 * Default source: the model writes one question per everyday topic (built-in list, or one topic per
 * line of --topics) and style, sampled at temperature 1, then answers it (greedy unless --temperature).
 * With --prompts the questions come from a file instead (a JSONL chat dataset's first user turn, or
 * one prompt per line). Each row is {"messages": [user, assistant]} plus "topic" in topic mode.
 */
import { existsSync, readFileSync } from "node:fs";
import { generate } from "../generate/generate.js";
import { appendOutputFile } from "../io/output.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { readChatDataset } from "../train/data.js";
import { cleanQuestion, EVERYDAY_TOPICS, questionPrompt, topicFor } from "../train/general-topics.js";
import { parseNumber, required, UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

export const klDataCommand = defineCommand({
  name: "kl-data",
  summary: "General-topic KL chats: the chat model writes a question per everyday topic, then answers it (or answers --prompts).",
  options: {
    ...modelOptions,
    out: { type: "string", value: "FILE.jsonl", required: true, description: "output chat dataset (must not exist)" },
    count: { type: "string", value: "N", description: "rows to write in topic mode (default 1000)" },
    topics: { type: "string", value: "FILE", description: "one topic per line (# comments) instead of the built-in everyday topics" },
    prompts: {
      type: "string",
      value: "FILE",
      description: "answer these prompts instead (JSONL chat dataset: first user turn; or one prompt per line)",
    },
    limit: { type: "string", value: "N", description: "with --prompts: answer only the first N" },
    "max-new-tokens": { type: "string", value: "N", default: "256", description: "tokens per answer at most" },
    "question-tokens": { type: "string", value: "N", default: "64", description: "tokens per generated question at most" },
    temperature: {
      type: "string",
      value: "T",
      description: "sample answers at this temperature (default: greedy; questions are sampled at 1)",
    },
    seed: { type: "string", value: "S", default: "0", description: "seed of the first row (+1 per row)" },
  },
  notes: ["with --prompts the topic source (--topics, --count) is not used"],
});

/** Attempts (with other seeds) before a topic whose generated question stays empty is an error. */
const QUESTION_ATTEMPTS = 4;

export function runKlData(argv: readonly string[]): number {
  const parsed = parseOrHelp(klDataCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  if (existsSync(out)) throw new UsageError(`${out} exists; choose a new --out`);
  if (values.prompts && (values.topics || values.count))
    throw new UsageError("--prompts replaces the topic source; --topics and --count apply without it (use --limit with --prompts)");
  const maxNewTokens = parseNumber("--max-new-tokens", values["max-new-tokens"], { integer: true, min: 1 }) ?? 256;
  const questionTokens = parseNumber("--question-tokens", values["question-tokens"], { integer: true, min: 1 }) ?? 64;
  const seed = parseNumber("--seed", values.seed, { integer: true, min: 0 }) ?? 0;
  const temperature = parseNumber("--temperature", values.temperature, { min: 0.0001 });

  let prompts: string[] | null = null;
  let topics: readonly string[] = EVERYDAY_TOPICS;
  let count: number;
  if (values.prompts) {
    prompts = readPrompts(values.prompts);
    count = Math.min(parseNumber("--limit", values.limit, { integer: true, min: 1 }) ?? prompts.length, prompts.length);
  } else {
    if (values.topics) topics = readTopics(values.topics);
    count =
      parseNumber("--count", values.count, { integer: true, min: 1 }) ??
      parseNumber("--limit", values.limit, { integer: true, min: 1 }) ??
      1000;
  }

  const model = openModel(values);
  try {
    const tokenizer = ChatTokenizer.fromDir(model.dir);
    const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
    const reply = (content: string, tokens: number, rowSeed: number, greedy: boolean, temp: number): string => {
      const ids = tokenizer.encodeChat([{ role: "user", content }], { addGenerationPrompt: true });
      const result = generate(model.decoder, [ids], null, {
        maxNewTokens: tokens,
        greedy,
        temperature: temp,
        seed: rowSeed,
        eosTokenIds: eos,
      });
      return tokenizer.decode(
        result.newIds[0]!.filter((t) => !eos.includes(t)),
        { skipSpecialTokens: true },
      );
    };
    const progress = progressReporter("kl-data");
    for (let i = 0; i < count; i++) {
      let question: string;
      let topic: string | null = null;
      if (prompts) question = prompts[i]!;
      else {
        const chosen = topicFor(i, topics);
        topic = chosen.topic;
        question = askQuestion(
          (attempt) =>
            cleanQuestion(reply(questionPrompt(chosen.topic, chosen.style), questionTokens, seed + i + attempt * 1_000_003, false, 1)),
          topic,
        );
      }
      const answer = reply(question, maxNewTokens, seed + i, temperature === undefined, temperature ?? 1);
      const row = {
        messages: [
          { role: "user", content: question },
          { role: "assistant", content: answer },
        ],
        ...(topic === null ? {} : { topic }),
      };
      appendOutputFile(out, `${JSON.stringify(row)}\n`);
      progress(i + 1, count);
    }
  } finally {
    model.dispose();
  }
  return 0;
}

/** A sampled question; retried with other seeds while it comes out empty. */
function askQuestion(attempt: (n: number) => string, topic: string): string {
  for (let n = 0; n < QUESTION_ATTEMPTS; n++) {
    const q = attempt(n);
    if (q !== "") return q;
  }
  throw new RangeError(`kl-data: the model wrote no question about "${topic}" in ${QUESTION_ATTEMPTS} attempts (is it a chat model?)`);
}

function readPrompts(file: string): string[] {
  const prompts = file.endsWith(".jsonl")
    ? readChatDataset(file).examples.map((e) => {
        const user = e.messages.find((m) => m.role === "user")?.content;
        if (!user?.trim()) throw new UsageError(`${file}:${e.line}: no user turn to use as a prompt`);
        return user;
      })
    : readText(file)
        .split("\n")
        .filter((l) => l.trim() !== "");
  if (prompts.length === 0) throw new UsageError(`--prompts: ${file} has no prompts; nothing to answer`);
  return prompts;
}

function readTopics(file: string): string[] {
  const topics = readText(file)
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (topics.length === 0) throw new UsageError(`${file}: no topics (one per line; # starts a comment)`);
  return topics;
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`${file}: cannot read (${(error as Error).message})`);
  }
}
