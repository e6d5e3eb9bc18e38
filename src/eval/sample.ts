/**
 * Sampling answers to evaluation questions with an emlab model: N samples per paraphrase (the study:
 * 50, temperature 1, top-p 1, 600 new tokens), batched from one prefill per chunk, seeded per
 * (question, paraphrase, chunk), appended chunk by chunk to a results file. Re-running after an
 * interruption completes what is missing: every row exactly once, the same rows as an uninterrupted run.
 * `sampleResponses` runs synchronously; `sampleResponsesEffect` yields to the event loop between decode
 * steps and can be interrupted there.
 */
import { createHash } from "node:crypto";
import { Effect } from "effect";
import { generate, type GenerateOptions } from "../generate/generate.js";
import { type GenerationError, generateEffect } from "../generate/generate-effect.js";
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

/** One generate() call of the sampling plan: `size` samples of one paraphrase, keeping those from `skip` on. */
interface ChunkJob {
  question: Question;
  paraphrase: number;
  text: string;
  prompt: number[];
  chunk: number;
  /** Rows of this chunk already in the results (a chunk cut short earlier resumes at its first missing row). */
  skip: number;
  size: number;
}

/** The chunks still to sample (in order) and the progress counts, from the rows `results` already holds. */
function samplingPlan(
  tokenizer: ChatTokenizer,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions,
): { jobs: ChunkJob[]; done: number; total: number } {
  const chunkSize = options.chunkSize ?? 25;
  const done = new Map<string, number>();
  for (const row of results.rows) {
    const key = `${row.question_id}\0${row.question}`;
    done.set(key, (done.get(key) ?? 0) + 1);
  }
  const jobs: ChunkJob[] = [];
  for (const question of questions) {
    const wanted = options.samples ?? question.samplesPerParaphrase;
    for (const [paraphrase, text] of question.paraphrases.entries()) {
      let have = done.get(`${question.id}\0${text}`) ?? 0;
      if (have >= wanted) continue;
      const system = question.system ?? options.system;
      const messages: ChatMessage[] = [...(system ? [{ role: "system", content: system }] : []), { role: "user", content: text }];
      const prompt = tokenizer.encodeChat(messages, { addGenerationPrompt: true });
      while (have < wanted) {
        const chunk = Math.floor(have / chunkSize);
        const start = chunk * chunkSize;
        const size = Math.min(chunkSize, wanted - start);
        jobs.push({ question, paraphrase, text, prompt, chunk, skip: have - start, size });
        have = start + size;
      }
    }
  }
  const total = questions.reduce((n, q) => n + q.paraphrases.length * (options.samples ?? q.samplesPerParaphrase), 0);
  return { jobs, done: [...done.values()].reduce((a, b) => a + b, 0), total };
}

/** Sampling one chunk sets up the model and tokenizer bits shared by every chunk. */
function chunkSampler(model: LoadedModel, tokenizer: ChatTokenizer, options: SampleOptions) {
  const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
  const pad = tokenizer.padTokenId ?? eos[0] ?? 0;
  return {
    /** The generate() options of a chunk. */
    generateOptions: (job: ChunkJob): GenerateOptions => ({
      maxNewTokens: options.maxNewTokens ?? 600,
      temperature: options.temperature ?? 1,
      topP: options.topP ?? 1,
      seed: chunkSeed(options.seed ?? 0, job.question.id, job.paraphrase, job.chunk),
      samples: job.size,
      eosTokenIds: eos,
      padTokenId: pad,
    }),
    /** The result rows of a generated chunk (those not already in the results). */
    rows: (job: ChunkJob, newIds: readonly (readonly number[])[]): ResultRow[] =>
      newIds.slice(job.skip).map((ids) => ({
        response: tokenizer.decode(
          ids.filter((t) => !eos.includes(t)),
          { skipSpecialTokens: true },
        ),
        question: job.text,
        question_id: job.question.id,
      })),
  };
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
 * `sampleResponses` one chunk at a time: generates a chunk (synchronously), appends its rows to
 * `results`, yields them. `sampleChunksEffect` is the same sampling yielding within each chunk too.
 */
export function* sampleChunks(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions = {},
): Generator<ResultRow[], void> {
  const plan = samplingPlan(tokenizer, questions, results, options);
  const sampler = chunkSampler(model, tokenizer, options);
  let progress = plan.done;
  for (const job of plan.jobs) {
    const out = generate(model.decoder, [job.prompt], null, sampler.generateOptions(job));
    const rows = sampler.rows(job, out.newIds);
    results.append(rows);
    progress += rows.length;
    options.onChunk?.(progress, plan.total);
    yield rows;
  }
}

/**
 * `sampleChunks` as an Effect: the same rows in the same order, but each chunk's generation yields to the
 * event loop between decode steps (generateEffect), so a long chunk does not block timers, HTTP replies
 * or signals, and an interruption stops it within one decode step (its tensors freed; rows of finished
 * chunks are in the file, the interrupted chunk adds none). `onRows` runs after each chunk is appended;
 * the result is the number of rows added.
 */
export const sampleChunksEffect = <E = never, R = never>(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions = {},
  onRows: (rows: ResultRow[]) => Effect.Effect<void, E, R> = () => Effect.void,
): Effect.Effect<number, GenerationError | E, R> =>
  Effect.gen(function* () {
    const plan = samplingPlan(tokenizer, questions, results, options);
    const sampler = chunkSampler(model, tokenizer, options);
    let progress = plan.done;
    let added = 0;
    for (const job of plan.jobs) {
      const out = yield* generateEffect(model.decoder, [job.prompt], null, sampler.generateOptions(job));
      const rows = sampler.rows(job, out.newIds);
      results.append(rows);
      added += rows.length;
      progress += rows.length;
      options.onChunk?.(progress, plan.total);
      yield* onRows(rows);
    }
    return added;
  });

/** `sampleResponses` as an interruptible Effect that yields within chunks (see sampleChunksEffect). */
export const sampleResponsesEffect = (
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions = {},
): Effect.Effect<number, GenerationError> => sampleChunksEffect(model, tokenizer, questions, results, options);
