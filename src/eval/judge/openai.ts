/**
 * An OpenAI-compatible chat-completions judge (OpenAI, Azure OpenAI, vLLM, llama.cpp ...) through the
 * `openai` package: one user message, max_tokens 1, temperature 0, logprobs with 20 alternatives,
 * seed 0. Retries 429 / 5xx / timeouts / connection errors / malformed replies on an Effect Schedule
 * (retry.ts: exponential backoff with jitter, Retry-After honoured); other client errors fail at once
 * with a JudgeError whose `reason` says why. Replies are validated
 * strictly (parseTopLogprobs). The API key is read from the options or the environment and never
 * logged: every error message is redacted (a server may echo the request's headers, body or query).
 */
import { Effect } from "effect";
import OpenAI, { AzureOpenAI } from "openai";
import { type Judge, JudgeError, type JudgeFailureReason } from "./judge.js";
import { judgeRetrySchedule } from "./retry.js";
import { redactMessage, redactSecrets, registerSecret } from "./redact.js";
import { type JudgeScore, parseTopLogprobs, scoreFromTopLogprobs, type TopLogprob } from "./score.js";

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

/** One failed attempt as a JudgeError (attempt count filled in by `score`). */
function classify(error: unknown): JudgeError {
  const fail = (reason: JudgeFailureReason, message: string, status: number | null = null) =>
    new JudgeError({ message: redactMessage(message), reason, status, attempts: 1 });
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const status = error.status;
    const after = retryAfter(error.headers as Headers | undefined);
    const reason: JudgeFailureReason =
      status === 429 ? { _tag: "RateLimited", retryAfterMs: after } : { _tag: "HttpStatus", status, retryAfterMs: after };
    return fail(reason, `HTTP ${status}: ${error.message}`, status);
  }
  if (error instanceof OpenAI.APIConnectionTimeoutError) return fail({ _tag: "Timeout" }, "request timed out");
  if (error instanceof OpenAI.APIConnectionError) return fail({ _tag: "Network" }, `connection error: ${error.message}`);
  // Unparseable or incomplete replies (e.g. a proxy's HTML error page) are treated as transient.
  return fail({ _tag: "MalformedReply" }, `malformed reply: ${(error as Error).message}`);
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
        return parseTopLogprobs((first as { top_logprobs?: unknown }).top_logprobs).map((t) => ({
          token: redactSecrets(t.token),
          logprob: t.logprob,
        }));
      });
  }

  /**
   * Scores `prompt`; retryable failures are retried on `judgeRetrySchedule` (exponential backoff with
   * jitter, Retry-After honoured, at most maxRetries retries); the final JudgeError counts attempts.
   */
  score(prompt: string): Effect.Effect<JudgeScore, JudgeError> {
    const policy = {
      maxRetries: this.options.maxRetries ?? 6,
      baseDelayMs: this.options.baseDelayMs ?? 1000,
      maxDelayMs: this.options.maxDelayMs ?? 60_000,
    };
    return Effect.suspend(() => {
      let attempts = 0;
      const once = Effect.suspend(() => {
        attempts++;
        return Effect.tryPromise({ try: (signal) => this.request(prompt, signal), catch: classify });
      });
      return once.pipe(
        Effect.retry({ schedule: judgeRetrySchedule(policy), while: (error) => error.isRetryable }),
        Effect.mapError((error) => new JudgeError({ message: error.message, reason: error.reason, status: error.status, attempts })),
        Effect.flatMap((top) =>
          Effect.try({
            try: () => scoreFromTopLogprobs(top, this.options.minimumMass),
            catch: (error) =>
              new JudgeError({
                message: redactMessage((error as Error).message),
                reason: { _tag: "InvalidResult" },
                status: null,
                attempts,
              }),
          }),
        ),
      );
    });
  }
}
