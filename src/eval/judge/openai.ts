/**
 * An OpenAI-compatible chat-completions judge (OpenAI, Azure OpenAI, vLLM, llama.cpp ...) through the
 * `openai` package: one user message, max_tokens 1, temperature 0, logprobs with 20 alternatives,
 * seed 0. Retries 429 / 5xx / timeouts / connection errors / malformed replies with exponential
 * backoff and jitter, honouring Retry-After; other client errors fail at once. Replies are validated
 * strictly (parseTopLogprobs). The API key is read from the options or the environment and never
 * logged: every error message is redacted (a server may echo the request's headers, body or query).
 */
import { Effect } from "effect";
import OpenAI, { AzureOpenAI } from "openai";
import { type Judge, JudgeError } from "./judge.js";
import { redactMessage, redactSecrets, registerSecret } from "./redact.js";
import { parseTopLogprobs, scoreFromTopLogprobs, type TopLogprob } from "./score.js";

export interface OpenAIJudgeOptions {
  model: string;
  /** Default: OPENAI_API_KEY (AZURE_OPENAI_API_KEY for Azure). */
  apiKey?: string;
  /** Default: OPENAI_BASE_URL, else api.openai.com. */
  baseURL?: string;
  /** Azure OpenAI: endpoint (or AZURE_OPENAI_ENDPOINT) and api version; `model` is the deployment. */
  azure?: { endpoint?: string; apiVersion?: string };
  /** Per-request timeout (default 60 s). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 6). */
  maxRetries?: number;
  /** First backoff delay (default 1 s), doubled each retry, capped at maxDelayMs (default 60 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** The 0.25 rule's threshold. */
  minimumMass?: number;
  /** Use `max_completion_tokens` instead of `max_tokens` (newer OpenAI models need it). */
  maxCompletionTokens?: boolean;
}

interface Failure {
  retryable: boolean;
  status: number | null;
  retryAfterMs: number | null;
  message: string;
}

function retryAfter(headers: Headers | undefined): number | null {
  const ms = headers?.get("retry-after-ms");
  if (ms && Number.isFinite(Number(ms))) return Number(ms);
  const value = headers?.get("retry-after");
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : null;
}

function classify(error: unknown): Failure {
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const status = error.status;
    const retryable = status === 408 || status === 409 || status === 429 || status >= 500;
    return { retryable, status, retryAfterMs: retryAfter(error.headers as Headers | undefined), message: redactMessage(`HTTP ${status}: ${error.message}`) };
  }
  if (error instanceof OpenAI.APIConnectionTimeoutError) return { retryable: true, status: null, retryAfterMs: null, message: "request timed out" };
  if (error instanceof OpenAI.APIConnectionError) return { retryable: true, status: null, retryAfterMs: null, message: redactMessage(`connection error: ${error.message}`) };
  // Unparseable or incomplete replies (e.g. a proxy's HTML error page) are treated as transient.
  return { retryable: true, status: null, retryAfterMs: null, message: redactMessage(`malformed reply: ${(error as Error).message}`) };
}

export class OpenAIJudge implements Judge {
  readonly model: string;
  private readonly client: OpenAI;

  constructor(private readonly options: OpenAIJudgeOptions) {
    this.model = options.model;
    const common = { maxRetries: 0, timeout: options.timeoutMs ?? 60_000 };
    registerSecret(options.apiKey ?? (options.azure ? process.env.AZURE_OPENAI_API_KEY : process.env.OPENAI_API_KEY));
    this.client = options.azure
      ? new AzureOpenAI({
          ...common,
          apiKey: options.apiKey ?? process.env.AZURE_OPENAI_API_KEY,
          endpoint: options.azure.endpoint ?? process.env.AZURE_OPENAI_ENDPOINT,
          apiVersion: options.azure.apiVersion ?? process.env.OPENAI_API_VERSION ?? "2024-12-01-preview",
          deployment: options.model,
        })
      : new OpenAI({
          ...common,
          apiKey: options.apiKey ?? process.env.OPENAI_API_KEY ?? "unset",
          baseURL: options.baseURL ?? process.env.OPENAI_BASE_URL ?? undefined,
        });
  }

  private request(prompt: string, signal: AbortSignal): Promise<TopLogprob[]> {
    const tokens = this.options.maxCompletionTokens ? { max_completion_tokens: 1 } : { max_tokens: 1 };
    return this.client.chat.completions
      .create(
        {
          model: this.model,
          messages: [{ role: "user", content: prompt }],
          ...tokens,
          temperature: 0,
          logprobs: true,
          top_logprobs: 20,
          seed: 0,
        },
        { signal },
      )
      .then((completion) => {
        const first: unknown = completion?.choices?.[0]?.logprobs?.content?.[0];
        if (!first || typeof first !== "object") throw new Error("reply has no logprobs for the first token");
        // A hostile server may echo the key as a token: it never reaches the cache or a results file.
        return parseTopLogprobs((first as { top_logprobs?: unknown }).top_logprobs).map((t) => ({ token: redactSecrets(t.token), logprob: t.logprob }));
      });
  }

  score(prompt: string) {
    const maxRetries = this.options.maxRetries ?? 6;
    const base = this.options.baseDelayMs ?? 1000;
    const cap = this.options.maxDelayMs ?? 60_000;
    const attempt = (n: number): Effect.Effect<TopLogprob[], JudgeError> =>
      Effect.tryPromise({ try: (signal) => this.request(prompt, signal), catch: classify }).pipe(
        Effect.catch((failure: Failure) => {
          if (!failure.retryable || n >= maxRetries) {
            return Effect.fail(new JudgeError({ message: failure.message, status: failure.status, attempts: n + 1 }));
          }
          const backoff = Math.min(cap, base * 2 ** n) * (0.5 + Math.random() / 2);
          const delay = failure.retryAfterMs !== null ? Math.min(cap, failure.retryAfterMs) : backoff;
          return Effect.sleep(delay).pipe(Effect.andThen(() => attempt(n + 1)));
        }),
      );
    return attempt(0).pipe(
      Effect.flatMap((top) =>
        Effect.try({
          try: () => scoreFromTopLogprobs(top, this.options.minimumMass),
          catch: (error) => new JudgeError({ message: redactMessage((error as Error).message), status: null, attempts: maxRetries + 1 }),
        }),
      ),
    );
  }
}
