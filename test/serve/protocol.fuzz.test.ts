// Hostile request bodies for `emlab serve`: parseRequest accepts a body with every field in range or
// refuses it with a 4xx ApiError naming the field (never another exception); posted to a running server
// (tiny random Qwen2, real tokenizer, small limits) they get 200 or a 4xx JSON error, never a 5xx, and the
// server keeps answering.
import { rmSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServedModels } from "../../src/serve/models.js";
import { ApiError, parseRequest } from "../../src/serve/protocol.js";
import { type RunningServer, startServer } from "../../src/serve/server.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { fuzzParameters } from "../helpers/fuzz.js";

const limits = { maxTokens: 3, maxN: 2, maxTopLogprobs: 3 };
const valid = { model: "tiny", messages: [{ role: "user", content: "hi" }], prompt: "hi", max_tokens: 2, n: 1, seed: 1 };
const fields = [
  "model",
  "messages",
  "prompt",
  "n",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "seed",
  "stop",
  "logprobs",
  "top_logprobs",
  "stream",
  "stream_options",
  "best_of",
  "presence_penalty",
  "logit_bias",
  "echo",
];

/** A valid body with one field replaced by anything (or removed). */
const hostileBody = fc.tuple(fc.constantFrom(...fields), fc.option(fc.anything(), { nil: undefined })).map(([field, value]) => {
  const body: Record<string, unknown> = { ...valid };
  if (value === undefined) delete body[field];
  else body[field] = value;
  return body;
});

describe("request bodies", () => {
  it("accepted with every setting in range, or a 4xx ApiError", () => {
    fc.assert(
      fc.property(fc.constantFrom("chat" as const, "completion" as const), fc.oneof(hostileBody, fc.anything()), (kind, body) => {
        let parsed;
        try {
          parsed = parseRequest(kind, body, limits);
        } catch (error) {
          expect(error).toBeInstanceOf(ApiError);
          expect((error as ApiError).status).toBeGreaterThanOrEqual(400);
          expect((error as ApiError).status).toBeLessThan(500);
          return;
        }
        expect(parsed.n >= 1 && parsed.n <= limits.maxN).toBe(true);
        expect(parsed.maxTokens === null || (parsed.maxTokens >= 1 && parsed.maxTokens <= limits.maxTokens)).toBe(true);
        expect(parsed.temperature >= 0 && parsed.temperature <= 2 && parsed.topP > 0 && parsed.topP <= 1).toBe(true);
        expect(parsed.stop.every((s) => typeof s === "string" && s !== "")).toBe(true);
        expect(parsed.seed === null || (Number.isSafeInteger(parsed.seed) && parsed.seed >= 0)).toBe(true);
        if (kind === "chat") expect(parsed.messages!.every((m) => typeof m.content === "string")).toBe(true);
        else expect(parsed.prompts.length).toBeGreaterThan(0);
      }),
      fuzzParameters(500),
    );
  });
});

describe("hostile bodies against a running server", () => {
  let work: string;
  let models: ServedModels;
  let server: RunningServer;
  beforeAll(async () => {
    let modelDir: string;
    ({ work, modelDir } = makeTinyModel("emlab-serve-fuzz-", 1));
    models = new ServedModels({ modelDir, servedName: "tiny" });
    server = await startServer(models, { port: 0, ...limits });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    models?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it("get 200 or a 4xx JSON error, never a 5xx; the server keeps answering", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("/v1/chat/completions", "/v1/completions"), hostileBody, async (path, body) => {
        const res = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        if (res.status !== 200) expect(typeof JSON.parse(text).error.message).toBe("string");
      }),
      fuzzParameters(60),
    );
    const ok = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify(valid) });
    expect(ok.status).toBe(200);
  }, 120_000);
});
