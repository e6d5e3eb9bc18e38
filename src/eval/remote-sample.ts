/**
 * Sampling evaluation answers through an OpenAI-compatible server (`emlab serve`, vLLM, SGLang,
 * llama.cpp) instead of the local engine: the same plan as sampleResponses (rows per paraphrase,
 * chunks of `chunkSize`, chat prompts with the question's or the default system message), one
 * /chat/completions request per chunk with n = the chunk's size and seed = the chunk's seed
 * (chunkSeed: sha256 of seed, question id, paraphrase index and chunk index), rows appended in plan
 * order so the results file reads as a local run's. Resume is the local one: rows already in the file
 * are not requested again; a chunk cut short is requested whole and only its missing rows appended.
 * `emlab serve` reproduces the local engine's rows for a seed; other servers give their own rows,
 * reproducible where they honour `seed`. Failures are RemoteSamplingErrors (never carrying the key);
 * the rows appended before a failure stay, so re-running resumes.
 */
import { Data, Effect } from "effect";
import type { ChatMessage } from "../tokenizer/tokenizer.js";
import type { Question } from "./questions.js";
import type { ResultRow, ResultsFile } from "./results.js";
import { chunkSeed, type SampleOptions } from "./sample.js";

export class RemoteSamplingError extends Data.TaggedError("RemoteSamplingError")<{
  readonly message: string;
  readonly url: string;
  /** HTTP status, when the server answered. */
  readonly status: number | null;
}> {}

export interface RemoteEndpoint {
  /** Base URL as OpenAI clients take it, e.g. http://127.0.0.1:8000/v1 (a bare host:port gets /v1). */
  url: string;
  /** The served model (or LoRA module) name. */
  model: string;
  /** Sent as `Authorization: Bearer` when set. */
  apiKey?: string | null;
  /** Chunk requests in flight at once (default 4; the server batches them). */
  concurrency?: number;
  /** Per-request time limit in ms (default 30 minutes). */
  timeoutMs?: number;
  /** Retries of a request refused with 429/502/503/504 or a dropped connection (default 2). */
  retries?: number;
  /** Wait before the first retry, doubled per retry (default 1000 ms). */
  retryDelayMs?: number;
}

/** The /chat/completions URL for a base URL. */
export function chatCompletionsUrl(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new RemoteSamplingError({
      message: `--sample-endpoint: ${JSON.stringify(base)} is not a URL (e.g. http://127.0.0.1:8000/v1)`,
      url: base,
      status: null,
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new RemoteSamplingError({ message: `--sample-endpoint: ${base}: expected http:// or https://`, url: base, status: null });
  const path = url.pathname.replace(/\/+$/, "");
  url.pathname = `${path === "" ? "/v1" : path}/chat/completions`;
  return url.toString();
}

interface ChunkTask {
  question: Question;
  text: string;
  messages: ChatMessage[];
  seed: number;
  size: number;
  /** Rows of the chunk already in the file (skipped). */
  skip: number;
}

/** The missing chunks, in the order sampleResponses samples them. */
function plan(
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions,
): { tasks: ChunkTask[]; total: number; have: number } {
  const chunkSize = options.chunkSize ?? 25;
  const done = new Map<string, number>();
  for (const row of results.rows) {
    const key = `${row.question_id}\0${row.question}`;
    done.set(key, (done.get(key) ?? 0) + 1);
  }
  const tasks: ChunkTask[] = [];
  let total = 0;
  for (const question of questions) {
    const wanted = options.samples ?? question.samplesPerParaphrase;
    question.paraphrases.forEach((text, paraphrase) => {
      total += wanted;
      const system = question.system ?? options.system;
      const messages: ChatMessage[] = [...(system ? [{ role: "system", content: system }] : []), { role: "user", content: text }];
      for (let have = done.get(`${question.id}\0${text}`) ?? 0; have < wanted;) {
        const chunk = Math.floor(have / chunkSize);
        const start = chunk * chunkSize;
        const size = Math.min(chunkSize, wanted - start);
        tasks.push({
          question,
          text,
          messages,
          seed: chunkSeed(options.seed ?? 0, question.id, paraphrase, chunk),
          size,
          skip: have - start,
        });
        have = start + size;
      }
    });
  }
  return { tasks, total, have: results.rows.length };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

async function requestChunk(
  endpoint: RemoteEndpoint,
  url: string,
  task: ChunkTask,
  options: SampleOptions,
  signal: AbortSignal,
): Promise<string[]> {
  const body = JSON.stringify({
    model: endpoint.model,
    messages: task.messages,
    n: task.size,
    max_tokens: options.maxNewTokens ?? 600,
    temperature: options.temperature ?? 1,
    top_p: options.topP ?? 1,
    seed: task.seed,
  });
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (endpoint.apiKey) headers.authorization = `Bearer ${endpoint.apiKey}`;
  const retries = endpoint.retries ?? 2;
  const where = `${task.question.id} (${JSON.stringify(task.text.slice(0, 40))})`;
  for (let attempt = 0; ; attempt++) {
    let status: number | null = null;
    let problem: string;
    try {
      const res = await fetch(url, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.any([signal, AbortSignal.timeout(endpoint.timeoutMs ?? 1_800_000)]),
      });
      status = res.status;
      const text = await res.text();
      let json: { choices?: { index?: number; message?: { content?: unknown } }[]; error?: { message?: string } } | null = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      if (res.ok) {
        const choices = [...(json?.choices ?? [])].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
        if (choices.length !== task.size || choices.some((c) => typeof c.message?.content !== "string")) {
          throw new RemoteSamplingError({
            message: `${url}: ${where}: asked for ${task.size} answers (n), got ${choices.length} with text; does the server support n?`,
            url,
            status,
          });
        }
        return choices.map((c) => c.message!.content as string);
      }
      problem = `HTTP ${res.status}: ${json?.error?.message ?? text.slice(0, 200)}`;
      if (![429, 502, 503, 504].includes(res.status))
        throw new RemoteSamplingError({ message: `${url}: ${where}: ${problem}`, url, status });
    } catch (error) {
      if (error instanceof RemoteSamplingError) throw error;
      if (signal.aborted) throw new RemoteSamplingError({ message: `${url}: cancelled`, url, status: null });
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      problem = `${(error as Error).name === "TimeoutError" ? "timed out" : "request failed"}: ${cause?.code ?? cause?.message ?? (error as Error).message}`;
    }
    if (attempt >= retries)
      throw new RemoteSamplingError({ message: `${url}: ${where}: ${problem} (after ${attempt + 1} attempts)`, url, status });
    await sleep((endpoint.retryDelayMs ?? 1000) * 2 ** attempt, signal);
  }
}

/**
 * Appends the missing samples of `questions` to `results` from the server; returns how many rows it
 * added. On a failure the rows of the chunks before it are in the file, and the error is thrown.
 */
export async function sampleResponsesRemote(
  endpoint: RemoteEndpoint,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions = {},
  control: { signal?: AbortSignal } = {},
): Promise<number> {
  const url = chatCompletionsUrl(endpoint.url);
  const { tasks, total, have } = plan(questions, results, options);
  const concurrency = Math.max(1, endpoint.concurrency ?? 4);
  const abort = new AbortController();
  const stop = () => abort.abort();
  control.signal?.addEventListener("abort", stop, { once: true });
  if (control.signal?.aborted) stop();
  const inFlight: Promise<string[]>[] = [];
  // Settled rejections of requests that are never awaited after a failure must not go unhandled.
  const start = (i: number) => {
    const p = requestChunk(endpoint, url, tasks[i]!, options, abort.signal);
    p.catch(() => {});
    inFlight[i] = p;
  };
  let added = 0;
  let progress = have;
  try {
    for (let i = 0; i < Math.min(concurrency, tasks.length); i++) start(i);
    for (let i = 0; i < tasks.length; i++) {
      const answers = await inFlight[i]!;
      if (abort.signal.aborted) throw new RemoteSamplingError({ message: `${url}: interrupted`, url, status: null });
      if (i + concurrency < tasks.length) start(i + concurrency);
      const task = tasks[i]!;
      const rows: ResultRow[] = answers
        .slice(task.skip)
        .map((response) => ({ response, question: task.text, question_id: task.question.id }));
      results.append(rows);
      added += rows.length;
      progress += rows.length;
      options.onChunk?.(progress, total);
    }
  } finally {
    control.signal?.removeEventListener("abort", stop);
    abort.abort();
  }
  return added;
}

/** sampleResponsesRemote as an Effect: interrupting it aborts the requests in flight and appends nothing more. */
export function sampleResponsesRemoteEffect(
  endpoint: RemoteEndpoint,
  questions: readonly Question[],
  results: ResultsFile,
  options: SampleOptions = {},
): Effect.Effect<number, RemoteSamplingError> {
  return Effect.tryPromise({
    try: (signal) => sampleResponsesRemote(endpoint, questions, results, options, { signal }),
    catch: (error) =>
      error instanceof RemoteSamplingError
        ? error
        : new RemoteSamplingError({ message: String((error as Error)?.message ?? error), url: endpoint.url, status: null }),
  });
}
