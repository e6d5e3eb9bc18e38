/**
 * `emlab serve`'s HTTP server (node:http): the OpenAI routes GET /v1/models, POST /v1/chat/completions
 * and POST /v1/completions (streaming as server-sent events ending in `data: [DONE]`), GET /health.
 * Guards: loopback unless `allowNonLoopback` and an API key are given (refused before listening), a
 * Bearer key when one is set, a body size limit (413), a bounded queue (429), a per-request timeout
 * (408), OpenAI-style error JSON for every 4xx/5xx, and no request that fails or disconnects can take
 * the server down. A request's seed (random when absent) makes its output reproducible.
 */
import { randomInt, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolveSampling } from "../generate/generate.js";
import { checkGenerationBudget } from "../generate/budget.js";
import type { DecodedSample, DecodeRequest, TokenLogprob } from "./decode.js";
import { Engine, type EngineOptions } from "./engine.js";
import { type ServedModels, ServeConfigError } from "./models.js";
import { ApiError, type Limits, type ParsedRequest, parseRequest } from "./protocol.js";
import { ChoiceText } from "./text.js";

export interface ServeOptions extends Partial<EngineOptions>, Partial<Limits> {
  host?: string;
  port?: number;
  /** Required to bind a non-loopback host (with an API key). */
  allowNonLoopback?: boolean;
  /** Requests must carry `Authorization: Bearer <apiKey>` when set. */
  apiKey?: string | null;
  maxBodyBytes?: number;
  /** Per-request limit from arrival to the last byte, in ms. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  engine: Engine;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::ffff:127.0.0.1";
}

/** Refuses settings that would expose the server without protection (before anything listens). */
export function checkExposure(host: string, options: { allowNonLoopback?: boolean; apiKey?: string | null }): void {
  if (isLoopback(host)) return;
  if (!options.allowNonLoopback)
    throw new ServeConfigError({
      message: `--host ${host} is not a loopback address: binding it needs --allow-non-loopback and an API key (--api-key-env VAR)`,
    });
  if (!options.apiKey)
    throw new ServeConfigError({
      message: `--host ${host} is not a loopback address: an API key is required (--api-key-env VAR naming an environment variable that holds it)`,
    });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new ApiError(413, `the request body (${declared} bytes) is over the limit of ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new ApiError(413, `the request body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => !over && resolve(Buffer.concat(chunks)));
    req.on("error", (error) => reject(new ApiError(400, `reading the request body failed: ${error.message}`)));
  });
}

function keyMatches(header: string | undefined, key: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? "");
  if (!match) return false;
  const given = Buffer.from(match[1]!.trim());
  const wanted = Buffer.from(key);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

interface Choice {
  index: number;
  text: ChoiceText;
  logprobs: TokenLogprob[];
  pending: TokenLogprob[];
  finish: string | null;
}

/** Starts the server; resolves once it listens (port 0: a free port, see `port`). */
export async function startServer(models: ServedModels, options: ServeOptions = {}): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  checkExposure(host, options);
  const apiKey = options.apiKey ?? null;
  const limits: Limits = { maxTokens: options.maxTokens ?? 4096, maxN: options.maxN ?? 128, maxTopLogprobs: options.maxTopLogprobs ?? 20 };
  const maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
  const timeoutMs = options.timeoutMs ?? 600_000;
  const log = options.log ?? (() => {});
  const engine = new Engine(models, {
    maxQueue: options.maxQueue ?? 64,
    maxBatchRows: options.maxBatchRows ?? 64,
    batchWaitMs: options.batchWaitMs ?? 5,
  });
  const eos = new Set(models.eosTokenIds);
  const tokenText = (id: number) => models.tokenizer.decode([id]);
  const created = Math.floor(Date.now() / 1000);

  function promptIds(request: ParsedRequest): number[][] {
    if (request.kind === "chat") return [models.tokenizer.encodeChat(request.messages!, { addGenerationPrompt: true })];
    return request.prompts.map((p, i) => {
      if (typeof p !== "string") {
        const vocab = models.model.spec.vocabSize;
        const badId = p.find((t) => t >= vocab);
        if (badId !== undefined)
          throw new ApiError(
            400,
            `prompt[${i}]: token id ${badId} is outside the vocabulary (${vocab})`,
            "invalid_request_error",
            "prompt",
          );
        return p;
      }
      const ids = models.tokenizer.encode(p);
      if (ids.length === 0) throw new ApiError(400, `prompt[${i}]: empty prompt`, "invalid_request_error", "prompt");
      return ids;
    });
  }

  async function complete(
    kind: "chat" | "completion",
    req: IncomingMessage,
    res: ServerResponse,
    cancelled: { value: boolean },
  ): Promise<void> {
    const raw = await readBody(req, maxBodyBytes);
    let json: unknown;
    try {
      json = JSON.parse(raw.toString("utf8"));
    } catch (error) {
      throw new ApiError(400, `the request body is not valid JSON: ${(error as Error).message}`);
    }
    const request = parseRequest(kind, json, limits);
    if (!models.has(request.model))
      throw new ApiError(
        404,
        `model ${JSON.stringify(request.model)} is not served here; served: ${models.names.join(", ")}`,
        "not_found_error",
        "model",
        "model_not_found",
      );
    const prompts = promptIds(request);
    const longest = Math.max(...prompts.map((p) => p.length));
    const room = (models.model.spec.maxPositions ?? Number.POSITIVE_INFINITY) - longest;
    const maxTokens = request.maxTokens ?? (kind === "completion" ? Math.min(16, limits.maxTokens) : Math.min(limits.maxTokens, room));
    if (!(maxTokens >= 1))
      throw new ApiError(
        400,
        `the prompt (${longest} tokens) leaves no room for new tokens in the model's ${models.model.spec.maxPositions} positions`,
        "invalid_request_error",
        "messages",
      );
    for (const ids of prompts) {
      try {
        checkGenerationBudget(models.model.spec, models.model.decoder.dtype, models.model.decoder.device, {
          rows: 1,
          promptLength: ids.length,
          maxNewTokens: maxTokens,
          samples: request.n,
        });
      } catch (error) {
        throw new ApiError(400, (error as Error).message, "invalid_request_error", "max_tokens");
      }
    }
    const sampling =
      request.temperature === 0
        ? resolveSampling({ greedy: true }, null)
        : resolveSampling({ temperature: request.temperature, topP: request.topP, topK: request.topK }, null);
    const seed = request.seed ?? randomInt(0, 2 ** 47);
    const fingerprint = `emlab-seed-${seed}`;
    const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replace(/-/g, "")}`;
    const choices: Choice[] = prompts.flatMap((_, p) =>
      Array.from({ length: request.n }, (_, s) => ({
        index: p * request.n + s,
        text: new ChoiceText(models.tokenizer, eos, request.stop),
        logprobs: [],
        pending: [],
        finish: null,
      })),
    );
    const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
    const send = (payload: unknown) => {
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(payload)}\n\n`);
    };
    const chunk = (choice: Choice, delta: string, finish: string | null) => {
      const logprobs = request.topLogprobs === null ? null : formatLogprobs(choice.pending, kind);
      choice.pending = [];
      const body =
        kind === "chat"
          ? { index: choice.index, delta: { content: delta }, logprobs, finish_reason: finish }
          : { index: choice.index, text: delta, logprobs, finish_reason: finish };
      send({ id, object, created: Math.floor(Date.now() / 1000), model: request.model, system_fingerprint: fingerprint, choices: [body] });
    };
    let failure: unknown = null;
    const decodeRequests: DecodeRequest[] = prompts.map((prompt, p) => ({
      prompt,
      samples: request.n,
      maxNewTokens: maxTokens,
      sampling,
      seed,
      topLogprobs: request.topLogprobs,
      cancelled: () => cancelled.value,
      onToken: (sample, token, logprob) => {
        // A failure here ends this request only (it leaves the batch), never its batch-mates.
        try {
          const choice = choices[p * request.n + sample]!;
          if (logprob && !eos.has(token)) {
            choice.logprobs.push(logprob);
            choice.pending.push(logprob);
          }
          const delta = choice.text.push(token);
          if (request.stream && (delta !== "" || choice.pending.length > 0)) chunk(choice, delta, null);
          return choice.text.stopped;
        } catch (error) {
          failure ??= error;
          cancelled.value = true;
          return true;
        }
      },
    }));
    const pending = engine.submit(request.model, decodeRequests, () => cancelled.value);
    if (request.stream) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      if (kind === "chat")
        for (const c of choices)
          send({
            id,
            object,
            created: Math.floor(Date.now() / 1000),
            model: request.model,
            system_fingerprint: fingerprint,
            choices: [{ index: c.index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
          });
    }
    const samples = await pending;
    if (failure !== null) throw new ApiError(500, `internal error while decoding: ${(failure as Error)?.message ?? String(failure)}`);
    const flat: DecodedSample[] = samples.flat();
    let completionTokens = 0;
    flat.forEach((sample, i) => {
      const choice = choices[i]!;
      completionTokens += sample.ids.length;
      choice.finish = sample.finish === "length" ? "length" : "stop";
    });
    if (cancelled.value) return;
    const usage = { prompt_tokens: prompts.reduce((n, p) => n + p.length, 0), completion_tokens: completionTokens, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    if (request.stream) {
      for (const c of choices) chunk(c, c.text.flush(), c.finish);
      if (request.includeUsage) send({ id, object, created: Math.floor(Date.now() / 1000), model: request.model, choices: [], usage });
      res.end("data: [DONE]\n\n");
      return;
    }
    sendJson(res, 200, {
      id,
      object: kind === "chat" ? "chat.completion" : "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      system_fingerprint: fingerprint,
      choices: choices.map((c) => {
        const logprobs = request.topLogprobs === null ? null : formatLogprobs(c.logprobs, kind);
        return kind === "chat"
          ? { index: c.index, message: { role: "assistant", content: c.text.text }, logprobs, finish_reason: c.finish }
          : { index: c.index, text: c.text.text, logprobs, finish_reason: c.finish };
      }),
      usage,
    });
  }

  function formatLogprobs(items: readonly TokenLogprob[], kind: "chat" | "completion"): unknown {
    if (kind === "chat") {
      return {
        content: items.map((item) => {
          const token = tokenText(item.token);
          return {
            token,
            logprob: item.logprob,
            bytes: [...Buffer.from(token)],
            top_logprobs: item.top.map((t) => ({
              token: tokenText(t.token),
              logprob: t.logprob,
              bytes: [...Buffer.from(tokenText(t.token))],
            })),
          };
        }),
      };
    }
    let offset = 0;
    const textOffset: number[] = [];
    const tokens = items.map((item) => {
      const token = tokenText(item.token);
      textOffset.push(offset);
      offset += token.length;
      return token;
    });
    return {
      tokens,
      token_logprobs: items.map((i) => i.logprob),
      top_logprobs: items.map((i) => Object.fromEntries(i.top.map((t) => [tokenText(t.token), t.logprob]))),
      text_offset: textOffset,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const cancelled = { value: false };
    res.on("close", () => {
      if (!res.writableFinished) cancelled.value = true;
    });
    const timer = setTimeout(() => {
      cancelled.value = true;
      const error = new ApiError(408, `the request took longer than ${timeoutMs} ms`, "timeout");
      if (!res.headersSent) sendJson(res, 408, error.body());
      else if (!res.writableEnded) res.end(`data: ${JSON.stringify(error.body())}\n\n`);
    }, timeoutMs);
    timer.unref();
    try {
      const path = (req.url ?? "/").split("?")[0]!;
      if (path === "/health" && req.method === "GET") return sendJson(res, 200, { status: "ok" });
      if (apiKey !== null && !keyMatches(req.headers.authorization, apiKey))
        throw new ApiError(401, "missing or wrong API key (Authorization: Bearer KEY)");
      if (path === "/v1/models") {
        if (req.method !== "GET") throw new ApiError(405, `${req.method} ${path}: use GET`);
        return sendJson(res, 200, {
          object: "list",
          data: models.names.map((name) => {
            const d = models.describe(name);
            return { id: name, object: "model", created, owned_by: "emlab", root: d.source ?? name, parent: d.parent };
          }),
        });
      }
      const kind = path === "/v1/chat/completions" ? "chat" : path === "/v1/completions" ? "completion" : null;
      if (kind === null)
        throw new ApiError(404, `no route ${path} (routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions)`);
      if (req.method !== "POST") throw new ApiError(405, `${req.method} ${path}: use POST`);
      await complete(kind, req, res, cancelled);
    } catch (error) {
      const api = error instanceof ApiError ? error : new ApiError(500, `internal error: ${(error as Error)?.message ?? String(error)}`);
      if (api.status >= 500) log(`error: ${api.message}`);
      if (api.status === 413) res.setHeader("connection", "close");
      if (!res.headersSent) sendJson(res, api.status, api.body());
      else if (!res.writableEnded && !res.destroyed) res.end(`data: ${JSON.stringify(api.body())}\n\n`);
    } finally {
      clearTimeout(timer);
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error) => log(`error: ${(error as Error)?.message ?? String(error)}`));
  });
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8000, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => log(`error: ${error.message}`));
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    host,
    port,
    engine,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => engine.stop()),
  };
}
