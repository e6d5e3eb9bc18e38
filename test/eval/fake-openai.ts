// A fake OpenAI chat-completions endpoint for the judge tests: a real node:http server on 127.0.0.1
// (ephemeral port) whose replies are scripted per request (a token distribution turned into top
// logprobs, an HTTP error with headers, a delay, or a malformed body); it records every request.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";

export interface TokenProb {
  token: string;
  prob: number;
}

/** What the server answers to one request; `delayMs` waits before answering (for client timeouts). */
export type FakeReply =
  /** 200 with a chat completion whose first token has these alternatives (in this order). */
  | { distribution: readonly TokenProb[]; delayMs?: number }
  /** Any status; a string body is sent as is, anything else as JSON (default: an OpenAI error object). */
  | { status: number; headers?: Record<string, string>; body?: unknown; delayMs?: number }
  /** 200, content-type application/json, with this raw (broken) text as the body. */
  | { malformed: string; delayMs?: number };

export interface RecordedRequest {
  index: number;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body (null when it was not JSON). */
  body: any;
  /** performance.now() when the request arrived. */
  receivedAt: number;
}

export type Script = (body: any, index: number, request: RecordedRequest) => FakeReply;

export interface FakeOpenAI {
  port: number;
  /** `http://127.0.0.1:PORT/v1`. */
  baseURL: string;
  readonly requests: RecordedRequest[];
  /** Most requests being answered at the same time since the last reset. */
  readonly maxInFlight: number;
  readonly inFlight: number;
  /** Replaces the script and forgets recorded requests and the in-flight maximum. */
  reset(script?: Script): void;
  close(): Promise<void>;
}

/** The chat-completion JSON for a distribution (logprob = ln p; the top token is the most likely one). */
export function completionFor(model: string, distribution: readonly TokenProb[]): unknown {
  const top = distribution.map(({ token, prob }) => ({ token, logprob: Math.log(prob), bytes: null }));
  const best = distribution.reduce((a, b) => (b.prob > a.prob ? b : a), distribution[0] ?? { token: "", prob: 1 });
  return {
    id: `chatcmpl-fake-${Math.random().toString(36).slice(2)}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: best.token, refusal: null },
        finish_reason: "length",
        logprobs: { content: [{ token: best.token, logprob: Math.log(best.prob), bytes: null, top_logprobs: top }], refusal: null },
      },
    ],
    usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 },
  };
}

const defaultScript: Script = () => ({ distribution: [{ token: "50", prob: 1 }] });

export async function startFakeOpenAI(initial: Script = defaultScript): Promise<FakeOpenAI> {
  let script = initial;
  let requests: RecordedRequest[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const timers = new Set<NodeJS.Timeout>();

  const send = (res: ServerResponse, reply: FakeReply, model: string): void => {
    if (res.destroyed || res.writableEnded) return;
    if ("distribution" in reply) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(completionFor(model, reply.distribution)));
    } else if ("malformed" in reply) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(reply.malformed);
    } else {
      const body =
        reply.body === undefined
          ? JSON.stringify({ error: { message: `fake error ${reply.status}`, type: "fake_error", param: null, code: null } })
          : typeof reply.body === "string"
            ? reply.body
            : JSON.stringify(reply.body);
      res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
      res.end(body);
    }
  };

  const server: Server = createServer((req, res) => {
    const receivedAt = performance.now();
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        inFlight--;
      }
    };
    res.on("close", finish); // answered, or the client gave up (timeout / abort)
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks).toString("utf8");
      let body: any = null;
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = null;
      }
      const record: RecordedRequest = {
        index: requests.length,
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawBody,
        body,
        receivedAt,
      };
      requests.push(record);
      let reply: FakeReply;
      if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
        reply = { status: 404, body: { error: { message: `no route ${req.method} ${req.url}`, type: "not_found" } } };
      } else {
        try {
          reply = script(body, record.index, record);
        } catch (error) {
          reply = { status: 500, body: { error: { message: `script threw: ${(error as Error).message}` } } };
        }
      }
      const model = typeof body?.model === "string" ? body.model : "unknown";
      if (reply.delayMs && reply.delayMs > 0) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          send(res, reply, model);
        }, reply.delayMs);
        timers.add(timer);
      } else {
        send(res, reply, model);
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    baseURL: `http://127.0.0.1:${port}/v1`,
    get requests() {
      return requests;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get inFlight() {
      return inFlight;
    },
    reset(next?: Script) {
      if (next) script = next;
      requests = [];
      maxInFlight = inFlight;
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  } as FakeOpenAI;
}
