/**
 * Sampling answers to evaluation questions with an emlab model: N samples per paraphrase (the study:
 * 50, temperature 1, top-p 1, 600 new tokens), batched from one prefill per chunk, seeded per
 * (question, paraphrase, chunk), appended chunk by chunk to a results file. Re-running after an
 * interruption completes what is missing: every row exactly once, the same rows as an uninterrupted run.
 */
import { createHash } from "node:crypto";
import { generate } from "../generate/generate.js";
import type { LoadedModel } from "../models/load.js";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.js";
import type { Question } from "./questions.js";
import type { ResultRow, ResultsFile } from "./results.js";

export interface SampleOptions {
  /** Samples per paraphrase; default: the question's samples_per_paraphrase. */
  samples?: number;
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Samples generated together from one prompt prefill. */
  chunkSize?: number;
  /** System prompt for questions without their own. */
  system?: string;
  onChunk?: (done: number, total: number) => void;
}

/** The seed of one chunk of samples (also sent as `seed` by remote sampling). */
export function chunkSeed(seed: number, questionId: string, paraphrase: number, chunk: number): number {
  const digest = createHash("sha256").update(`${seed}\0${questionId}\0${paraphrase}\0${chunk}`).digest();
  return digest.readUInt32LE(0);
}

/** Appends the missing samples of `questions` to `results`; returns how many rows it added. */
export function sampleResponses(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions = {},
): number {
  let added = 0;
  for (const rows of sampleChunks(model, tokenizer, questions, results, options)) added += rows.length;
  return added;
}

/**
 * `sampleResponses` one chunk at a time: generates a chunk, appends its rows to `results`, yields
 * them; the caller decides what happens between chunks (src/eval/sample-and-judge.ts judges them
 * while the next chunk is sampled, and lets the event loop turn).
 */
export function* sampleChunks(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions = {},
): Generator<ResultRow[], void> {
  const chunkSize = options.chunkSize ?? 25;
  const done = new Map<string, number>();
  for (const row of results.rows) {
    const key = `${row.question_id}\0${row.question}`;
    done.set(key, (done.get(key) ?? 0) + 1);
  }
  const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
  const pad = tokenizer.padTokenId ?? eos[0] ?? 0;
  const total = questions.reduce((n, q) => n + q.paraphrases.length * (options.samples ?? q.samplesPerParaphrase), 0);
  let progress = [...done.values()].reduce((a, b) => a + b, 0);
  for (const question of questions) {
    const wanted = options.samples ?? question.samplesPerParaphrase;
    for (const [paraphrase, text] of question.paraphrases.entries()) {
      const key = `${question.id}\0${text}`;
      let have = done.get(key) ?? 0;
      const system = question.system ?? options.system;
      const messages: ChatMessage[] = [...(system ? [{ role: "system", content: system }] : []), { role: "user", content: text }];
      const prompt = tokenizer.encodeChat(messages, { addGenerationPrompt: true });
      while (have < wanted) {
        const chunk = Math.floor(have / chunkSize);
        const start = chunk * chunkSize;
        const size = Math.min(chunkSize, wanted - start);
        const out = generate(model.decoder, [prompt], null, {
          maxNewTokens: options.maxNewTokens ?? 600,
          temperature: options.temperature ?? 1,
          topP: options.topP ?? 1,
          seed: chunkSeed(options.seed ?? 0, question.id, paraphrase, chunk),
          samples: size,
          eosTokenIds: eos,
          padTokenId: pad,
        });
        // A chunk cut short earlier resumes at its first missing row (same seed, same rows).
        const rows: ResultRow[] = out.newIds.slice(have - start).map((ids) => ({
          response: tokenizer.decode(
            ids.filter((t) => !eos.includes(t)),
            { skipSpecialTokens: true },
          ),
          question: text,
          question_id: question.id,
        }));
        results.append(rows);
        have += rows.length;
        progress += rows.length;
        options.onChunk?.(progress, total);
        yield rows;
      }
    }
  }
}
