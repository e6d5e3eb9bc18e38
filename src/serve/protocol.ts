/**
 * The OpenAI request bodies `emlab serve` accepts, checked field by field into one typed request
 * (chat messages or completion prompts, n, max_tokens, temperature, top_p, top_k, seed, stop,
 * logprobs, stream), and the OpenAI-style error a bad one gets (status, type, param). Unknown fields
 * are ignored as OpenAI servers do; fields that would change the output but are not supported
 * (penalties, logit_bias, echo, suffix, best_of) are refused rather than silently ignored.
 */
import type { ChatMessage } from "../tokenizer/tokenizer.js";

/** An HTTP error with an OpenAI-style body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status === 401
      ? "authentication_error"
      : status === 404
        ? "not_found_error"
        : status === 429
          ? "rate_limit_error"
          : status >= 500
            ? "server_error"
            : "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface Limits {
  maxTokens: number;
  maxN: number;
  maxTopLogprobs: number;
}

export interface ParsedRequest {
  kind: "chat" | "completion";
  model: string;
  /** Chat: one conversation; completion: one or more prompts (text or token ids). */
  messages: ChatMessage[] | null;
  prompts: (string | number[])[];
  n: number;
  /** null: not given (completions: 16; chat: what the context leaves, at most the server's limit). */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | null;
  stop: string[];
  /** null: no logprobs; k: the chosen token's and the k most likely. */
  topLogprobs: number | null;
  stream: boolean;
  includeUsage: boolean;
}

const bad = (param: string, message: string) => new ApiError(400, `${param}: ${message}`, "invalid_request_error", param);

function integer(body: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw bad(name, `expected an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw bad(name, `${v} is outside ${min}..${max}`);
  return v;
}

function number(body: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(name, `expected a number, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw bad(name, `${v} is outside ${min}..${max}`);
  return v;
}

function boolean(body: Record<string, unknown>, name: string): boolean {
  const v = body[name];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw bad(name, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function messageText(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part, i) => {
        if (
          part &&
          typeof part === "object" &&
          (part as { type?: unknown }).type === "text" &&
          typeof (part as { text?: unknown }).text === "string"
        )
          return (part as { text: string }).text;
        throw bad(`${param}[${i}]`, 'only text parts ({type: "text", text}) are supported');
      })
      .join("");
  }
  throw bad(param, "expected a string or a list of text parts");
}

function messages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw bad("messages", "expected a non-empty list of {role, content}");
  return value.map((m, i) => {
    if (!m || typeof m !== "object") throw bad(`messages[${i}]`, "expected an object {role, content}");
    const role = (m as { role?: unknown }).role;
    if (role !== "system" && role !== "user" && role !== "assistant" && role !== "developer")
      throw bad(`messages[${i}].role`, `expected system, user or assistant, got ${JSON.stringify(role)}`);
    return {
      role: role === "developer" ? "system" : role,
      content: messageText((m as { content?: unknown }).content, `messages[${i}].content`),
    };
  });
}

function prompts(value: unknown): (string | number[])[] {
  const isIds = (v: unknown): v is number[] =>
    Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "number" && Number.isSafeInteger(t) && t >= 0);
  if (typeof value === "string") return [value];
  if (isIds(value)) return [value];
  if (Array.isArray(value) && value.length > 0 && value.every((p) => typeof p === "string" || isIds(p)))
    return value as (string | number[])[];
  throw bad("prompt", "expected a string, a list of strings, a list of token ids or a list of such lists");
}

function unsupported(body: Record<string, unknown>): void {
  for (const name of ["presence_penalty", "frequency_penalty", "repetition_penalty"]) {
    const v = body[name];
    if (v !== undefined && v !== null && v !== 0 && !(name === "repetition_penalty" && v === 1))
      throw bad(name, "penalties are not supported by emlab serve");
  }
  if (body.logit_bias !== undefined && body.logit_bias !== null && Object.keys(body.logit_bias as object).length > 0)
    throw bad("logit_bias", "not supported by emlab serve");
  if (body.echo === true) throw bad("echo", "not supported by emlab serve");
  if (body.suffix !== undefined && body.suffix !== null) throw bad("suffix", "not supported by emlab serve");
  if (body.tools !== undefined && body.tools !== null) throw bad("tools", "tool calls are not supported by emlab serve");
  if (body.response_format !== undefined && body.response_format !== null && (body.response_format as { type?: unknown }).type !== "text")
    throw bad("response_format", "only text is supported");
}

/** Checks a parsed JSON body for `/v1/chat/completions` or `/v1/completions`. */
export function parseRequest(kind: "chat" | "completion", value: unknown, limits: Limits): ParsedRequest {
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new ApiError(400, "the request body must be a JSON object");
  const body = value as Record<string, unknown>;
  if (typeof body.model !== "string" || body.model === "") throw bad("model", "required (a served model name; GET /v1/models lists them)");
  unsupported(body);
  const n = integer(body, "n", 1, 1, limits.maxN);
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== n) throw bad("best_of", "only best_of = n is supported");
  const tokensField =
    body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? "max_completion_tokens" : "max_tokens";
  const maxTokens =
    body[tokensField] === undefined || body[tokensField] === null ? null : integer(body, tokensField, 0, 1, limits.maxTokens);
  const temperature = number(body, "temperature", 1, 0, 2);
  const topP = number(body, "top_p", 1, 0, 1);
  if (topP === 0) throw bad("top_p", "must be > 0");
  const topK = integer(body, "top_k", 0, -1, 1_000_000);
  const seedValue = body.seed;
  let seed: number | null = null;
  if (seedValue !== undefined && seedValue !== null) seed = integer(body, "seed", 0, 0, Number.MAX_SAFE_INTEGER);
  let stop: string[] = [];
  if (typeof body.stop === "string") stop = [body.stop];
  else if (Array.isArray(body.stop)) {
    if (body.stop.length > 4 || !body.stop.every((s) => typeof s === "string" && s !== ""))
      throw bad("stop", "expected a string or up to 4 non-empty strings");
    stop = body.stop as string[];
  } else if (body.stop !== undefined && body.stop !== null) throw bad("stop", "expected a string or a list of strings");
  if (stop.includes("")) throw bad("stop", "an empty stop string would stop at once");
  let topLogprobs: number | null = null;
  if (kind === "chat") {
    const wanted = boolean(body, "logprobs");
    const top = body.top_logprobs;
    if (top !== undefined && top !== null && !wanted) throw bad("top_logprobs", "needs logprobs: true");
    if (wanted) topLogprobs = integer(body, "top_logprobs", 0, 0, limits.maxTopLogprobs);
  } else if (body.logprobs !== undefined && body.logprobs !== null) {
    topLogprobs = integer(body, "logprobs", 0, 0, limits.maxTopLogprobs);
  }
  const stream = boolean(body, "stream");
  const options = body.stream_options;
  if (options !== undefined && options !== null && (typeof options !== "object" || Array.isArray(options)))
    throw bad("stream_options", "expected an object");
  const includeUsage = stream && (options as { include_usage?: unknown } | undefined)?.include_usage === true;
  return {
    kind,
    model: body.model,
    messages: kind === "chat" ? messages(body.messages) : null,
    prompts: kind === "completion" ? prompts(body.prompt) : [],
    n,
    maxTokens,
    temperature,
    topP,
    topK: topK < 0 ? 0 : topK,
    seed,
    stop,
    topLogprobs,
    stream,
    includeUsage,
  };
}
