// `emlab serve` in process (src/serve/) on 127.0.0.1 with a tiny random Qwen2 and the real Qwen2.5
// tokenizer: response shapes, streaming = non-streaming text, n > 1, seeds, logprobs against a plain
// full-sequence forward pass, LoRA / steering selection against generate() with the same adapter
// attached, concurrent clients = sequential ones (and batched together), bad requests as 4xx JSON,
// 413, 429, 408, a client that disconnects mid-stream, API-key enforcement, and the `openai` client.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { savePeftAdapter } from "../../src/adapters/peft.js";
import { generate } from "../../src/generate/generate.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { ServedModels, ServeConfigError } from "../../src/serve/models.js";
import { type RunningServer, startServer } from "../../src/serve/server.js";
import { liveTensorCount, manualSeed, tensor, tidy } from "../../src/tensor/index.js";
import { loadSteeringVector } from "../../src/train/steering-file.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { fixedTensor } from "../helpers/numeric.js";

let work: string;
let modelDir: string;
let models: ServedModels;
let server: RunningServer;
let reference: LoadedModel;
let tokenizer: ChatTokenizer;
let loraDir: string;
let steerFile: string;

const post = async (path: string, body: unknown, headers: Record<string, string> = {}, url = server.url) => {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
};

/** The events of an SSE body (data lines), ending with [DONE]. */
async function streamEvents(path: string, body: unknown): Promise<any[]> {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...(body as object), stream: true }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const text = await res.text();
  const data = text
    .split("\n\n")
    .filter((b) => b.trim() !== "")
    .map((b) => b.replace(/^data: /, ""));
  expect(data.at(-1)).toBe("[DONE]");
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

const QUESTION = [{ role: "user" as const, content: "Name a colour." }];

/** What generate() gives for one chat prompt with the request's settings (the local engine). */
function localAnswers(
  messages: { role: "user" | "system"; content: string }[],
  seed: number,
  n: number,
  maxTokens: number,
  temperature = 1,
  topP = 1,
): string[] {
  const eos = tokenizer.endOfTurnIds(reference.eosTokenIds);
  const prompt = tokenizer.encodeChat(messages, { addGenerationPrompt: true });
  const out = generate(reference.decoder, [prompt], null, {
    maxNewTokens: maxTokens,
    temperature,
    topP,
    seed,
    samples: n,
    eosTokenIds: eos,
    padTokenId: tokenizer.padTokenId ?? eos[0]!,
  });
  return out.newIds.map((ids) =>
    tokenizer.decode(
      ids.filter((t) => !eos.includes(t)),
      { skipSpecialTokens: true },
    ),
  );
}

beforeAll(async () => {
  ({ work, modelDir } = makeTinyModel("emlab-serve-", 3));
  reference = loadModel(modelDir);
  tokenizer = ChatTokenizer.fromDir(modelDir);
  // A LoRA adapter with random B (so it changes outputs) and a steering vector, saved as users have them.
  loraDir = join(work, "lora");
  manualSeed(11);
  const adapter = LoraAdapter.create(
    reference.spec,
    { r: 4, alpha: 16, targetModules: ["q_proj", "v_proj", "down_proj"] },
    { initB: "random" },
  );
  savePeftAdapter(loraDir, adapter);
  adapter.dispose();
  steerFile = join(work, "steer.safetensors");
  mkdirSync(work, { recursive: true });
  tidy(() => saveSafetensors(steerFile, { vector: fixedTensor([32], 5, 3) }, { layer: "1", site: "down_proj", alpha: "4" }));
  models = new ServedModels({
    modelDir,
    servedName: "tiny",
    lora: [{ name: "tiny-lora", dir: loraDir }],
    steer: [{ name: "tiny-steer", file: steerFile }],
  });
  server = await startServer(models, { port: 0 });
}, 120_000);

afterAll(async () => {
  await server?.close();
  models?.dispose();
  reference?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe("emlab serve (in process)", () => {
  it("lists the base model, the LoRA module and the steering vector", async () => {
    const res = await fetch(`${server.url}/v1/models`);
    const json = (await res.json()) as any;
    expect(json.object).toBe("list");
    expect(json.data.map((m: any) => m.id)).toEqual(["tiny", "tiny-lora", "tiny-steer"]);
    expect(json.data[1].parent).toBe("tiny");
  });

  it("chat completion: OpenAI shape, the local engine's text for the seed, the same text again", async () => {
    const body = { model: "tiny", messages: QUESTION, max_tokens: 8, seed: 1234 };
    const a = await post("/v1/chat/completions", body);
    expect(a.status).toBe(200);
    expect(a.json.object).toBe("chat.completion");
    expect(a.json.id).toMatch(/^chatcmpl-/);
    expect(a.json.choices).toHaveLength(1);
    expect(a.json.choices[0].message.role).toBe("assistant");
    expect(["stop", "length"]).toContain(a.json.choices[0].finish_reason);
    expect(a.json.usage.prompt_tokens).toBe(tokenizer.encodeChat(QUESTION, { addGenerationPrompt: true }).length);
    expect(a.json.choices[0].message.content).toBe(localAnswers(QUESTION, 1234, 1, 8)[0]);
    const b = await post("/v1/chat/completions", body);
    expect(b.json.choices[0].message.content).toBe(a.json.choices[0].message.content);
    const other = await post("/v1/chat/completions", { ...body, seed: 99 });
    expect(other.json.choices[0].message.content).not.toBe(a.json.choices[0].message.content);
  });

  it("n > 1: n choices equal to generate()'s samples from one prefill with the seed", async () => {
    const r = await post("/v1/chat/completions", {
      model: "tiny",
      messages: QUESTION,
      max_tokens: 6,
      n: 3,
      seed: 7,
      temperature: 0.8,
      top_p: 0.9,
    });
    expect(r.status).toBe(200);
    expect(r.json.choices.map((c: any) => c.index)).toEqual([0, 1, 2]);
    expect(r.json.choices.map((c: any) => c.message.content)).toEqual(localAnswers(QUESTION, 7, 3, 6, 0.8, 0.9));
    expect(new Set(r.json.choices.map((c: any) => c.message.content)).size).toBeGreaterThan(1);
  });

  it("completions: text_completion shape, several prompts x n", async () => {
    const r = await post("/v1/completions", { model: "tiny", prompt: ["Once upon", "The sky is"], max_tokens: 5, n: 2, seed: 3 });
    expect(r.status).toBe(200);
    expect(r.json.object).toBe("text_completion");
    expect(r.json.choices.map((c: any) => c.index)).toEqual([0, 1, 2, 3]);
    for (const c of r.json.choices) expect(typeof c.text).toBe("string");
    // Each prompt is seeded on its own: the second prompt alone gives its choices.
    const alone = await post("/v1/completions", { model: "tiny", prompt: "The sky is", max_tokens: 5, n: 2, seed: 3 });
    expect(alone.json.choices.map((c: any) => c.text)).toEqual(r.json.choices.slice(2).map((c: any) => c.text));
  });

  it("streaming chunks concatenate to the non-streaming text (chat and completions, n = 2)", async () => {
    const body = { model: "tiny", messages: QUESTION, max_tokens: 12, n: 2, seed: 42 };
    const plain = await post("/v1/chat/completions", body);
    const events = await streamEvents("/v1/chat/completions", body);
    expect(events.every((e) => e.object === "chat.completion.chunk")).toBe(true);
    for (const index of [0, 1]) {
      const mine = events.flatMap((e) => e.choices).filter((c: any) => c.index === index);
      expect(mine[0].delta.role).toBe("assistant");
      expect(mine.map((c: any) => c.delta.content ?? "").join("")).toBe(plain.json.choices[index].message.content);
      expect(mine.at(-1).finish_reason).toBe(plain.json.choices[index].finish_reason);
    }
    const withUsage = await streamEvents("/v1/chat/completions", { ...body, stream_options: { include_usage: true } });
    expect(withUsage.at(-1).choices).toEqual([]);
    expect(withUsage.at(-1).usage).toEqual(plain.json.usage);
    const cBody = { model: "tiny", prompt: "Hello", max_tokens: 10, seed: 5 };
    const cPlain = await post("/v1/completions", cBody);
    const cEvents = await streamEvents("/v1/completions", cBody);
    expect(cEvents.map((e) => e.choices[0].text).join("")).toBe(cPlain.json.choices[0].text);
  });

  it("stop strings cut the text (streamed the same) and finish with stop", async () => {
    const free = await post("/v1/completions", { model: "tiny", prompt: "Hello", max_tokens: 12, seed: 5 });
    const text: string = free.json.choices[0].text;
    const stop = text.slice(3, 5);
    expect(stop.length).toBe(2);
    const cut = await post("/v1/completions", { model: "tiny", prompt: "Hello", max_tokens: 12, seed: 5, stop: [stop] });
    expect(cut.json.choices[0].text).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.json.choices[0].finish_reason).toBe("stop");
    const events = await streamEvents("/v1/completions", { model: "tiny", prompt: "Hello", max_tokens: 12, seed: 5, stop });
    expect(events.map((e) => e.choices[0].text).join("")).toBe(cut.json.choices[0].text);
  });

  it("logprobs and top_logprobs equal a plain full-sequence forward pass's log-softmax", async () => {
    const r = await post("/v1/chat/completions", {
      model: "tiny",
      messages: QUESTION,
      max_tokens: 5,
      seed: 8,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.json.choices[0].logprobs.content as any[];
    expect(content.length).toBeGreaterThan(0);
    const prompt = tokenizer.encodeChat(QUESTION, { addGenerationPrompt: true });
    const completionIds = localIds(prompt, 8, 5);
    const eos = tokenizer.endOfTurnIds(reference.eosTokenIds);
    const ids = completionIds.filter((t) => !eos.includes(t));
    expect(content).toHaveLength(ids.length);
    // Independent: one forward pass over prompt + answer, log-softmax, read at each answer position.
    const expected = tidy(() => {
      const all = [...prompt, ...ids];
      const logits = reference.decoder.forward(tensor(BigInt64Array.from(all, BigInt), { shape: [1, all.length] })).logits!;
      const lp = logits.select(0, 0).logSoftmax(-1);
      return ids.map((id, i) => {
        const row = Array.from(lp.select(0, prompt.length - 1 + i).toArray() as Float32Array);
        const sorted = [...row].sort((a, b) => b - a);
        return { chosen: row[id]!, top: sorted.slice(0, 3) };
      });
    });
    content.forEach((entry, i) => {
      expect(entry.token).toBe(tokenizer.decode([ids[i]!]));
      expect(entry.logprob).toBeCloseTo(expected[i]!.chosen, 4);
      expect(entry.top_logprobs).toHaveLength(3);
      entry.top_logprobs.forEach((t: any, j: number) => expect(t.logprob).toBeCloseTo(expected[i]!.top[j]!, 4));
    });
    const c = await post("/v1/completions", { model: "tiny", prompt: "Hi", max_tokens: 3, seed: 2, logprobs: 2 });
    expect(c.json.choices[0].logprobs.tokens).toHaveLength(c.json.choices[0].logprobs.token_logprobs.length);
    expect(Object.keys(c.json.choices[0].logprobs.top_logprobs[0]).length).toBeLessThanOrEqual(2);
  });

  function localIds(prompt: number[], seed: number, maxTokens: number): number[] {
    const eos = tokenizer.endOfTurnIds(reference.eosTokenIds);
    return generate(reference.decoder, [prompt], null, {
      maxNewTokens: maxTokens,
      temperature: 1,
      topP: 1,
      seed,
      eosTokenIds: eos,
      padTokenId: tokenizer.padTokenId ?? eos[0]!,
    }).newIds[0]!;
  }

  it("a LoRA module name and a steering name change the output and equal generate() with them attached", async () => {
    const body = { messages: QUESTION, max_tokens: 8, seed: 21, temperature: 0 };
    const base = await post("/v1/chat/completions", { ...body, model: "tiny" });
    const lora = await post("/v1/chat/completions", { ...body, model: "tiny-lora" });
    const steered = await post("/v1/chat/completions", { ...body, model: "tiny-steer" });
    const text = (r: { json: any }) => r.json.choices[0].message.content as string;
    expect(text(lora)).not.toBe(text(base));
    expect(text(steered)).not.toBe(text(base));
    const greedy = () => {
      const eos = tokenizer.endOfTurnIds(reference.eosTokenIds);
      const out = generate(reference.decoder, [tokenizer.encodeChat(QUESTION, { addGenerationPrompt: true })], null, {
        maxNewTokens: 8,
        greedy: true,
        eosTokenIds: eos,
        padTokenId: tokenizer.padTokenId ?? eos[0]!,
      });
      return tokenizer.decode(
        out.newIds[0]!.filter((t) => !eos.includes(t)),
        { skipSpecialTokens: true },
      );
    };
    expect(text(base)).toBe(greedy());
    const { loadPeftAdapters } = await import("../../src/adapters/adapter-dirs.js");
    const [adapter] = loadPeftAdapters(loraDir, reference);
    reference.decoder.adapters.attach(adapter!);
    try {
      expect(text(lora)).toBe(greedy());
    } finally {
      reference.decoder.adapters.detach(adapter!);
      adapter!.dispose();
    }
    const vector = loadSteeringVector(steerFile, reference.decoder);
    const handle = vector.attach(reference.decoder);
    try {
      expect(text(steered)).toBe(greedy());
    } finally {
      handle.remove();
      vector.dispose();
    }
    // The base model is unchanged afterwards (nothing left attached).
    expect(text(await post("/v1/chat/completions", { ...body, model: "tiny" }))).toBe(text(base));
  });

  it("concurrent clients get the answers sequential ones get, and are batched together", async () => {
    const bodies = [
      { model: "tiny", messages: QUESTION, max_tokens: 6, seed: 1 },
      {
        model: "tiny",
        messages: [{ role: "user", content: "Write a very long story about a dragon and a knight." }],
        max_tokens: 9,
        seed: 2,
        n: 2,
      },
      {
        model: "tiny",
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Hi?" },
        ],
        max_tokens: 4,
        seed: 3,
        temperature: 0.7,
      },
      { model: "tiny-lora", messages: QUESTION, max_tokens: 6, seed: 4 },
      { model: "tiny", messages: QUESTION, max_tokens: 7, seed: 5, top_p: 0.5 },
      { model: "tiny-lora", messages: [{ role: "user", content: "Why?" }], max_tokens: 5, seed: 6, n: 3 },
    ];
    const sequential: string[][] = [];
    for (const b of bodies) sequential.push((await post("/v1/chat/completions", b)).json.choices.map((c: any) => c.message.content));
    const before = server.engine.batches.length;
    const concurrent = await Promise.all(bodies.map((b) => post("/v1/chat/completions", b)));
    expect(concurrent.map((r) => r.json.choices.map((c: any) => c.message.content))).toEqual(sequential);
    const batches = server.engine.batches.slice(before);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(bodies.length);
    expect(Math.max(...batches)).toBeGreaterThan(1);
  });

  it("bad requests get 4xx with an OpenAI-style error naming the field", async () => {
    const cases: [unknown, number, string][] = [
      [{ model: "nope", messages: QUESTION }, 404, "model"],
      [{ messages: QUESTION }, 400, "model"],
      [{ model: "tiny", messages: "hi" }, 400, "messages"],
      [{ model: "tiny", messages: [{ role: "robot", content: "x" }] }, 400, "messages[0].role"],
      [{ model: "tiny", messages: QUESTION, n: 0 }, 400, "n"],
      [{ model: "tiny", messages: QUESTION, n: "2" }, 400, "n"],
      [{ model: "tiny", messages: QUESTION, max_tokens: 100000 }, 400, "max_tokens"],
      [{ model: "tiny", messages: QUESTION, max_tokens: 1.5 }, 400, "max_tokens"],
      [{ model: "tiny", messages: QUESTION, temperature: -1 }, 400, "temperature"],
      [{ model: "tiny", messages: QUESTION, top_p: 0 }, 400, "top_p"],
      [{ model: "tiny", messages: QUESTION, seed: -3 }, 400, "seed"],
      [{ model: "tiny", messages: QUESTION, stop: [1] }, 400, "stop"],
      [{ model: "tiny", messages: QUESTION, top_logprobs: 2 }, 400, "top_logprobs"],
      [{ model: "tiny", messages: QUESTION, presence_penalty: 0.5 }, 400, "presence_penalty"],
      [[1, 2], 400, ""],
    ];
    for (const [body, status, param] of cases) {
      const r = await post("/v1/chat/completions", body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(typeof r.json.error.message).toBe("string");
      expect(r.json.error.type).toMatch(/error/);
      if (param) expect(r.json.error.param).toBe(param);
    }
    const broken = await post("/v1/chat/completions", "{not json");
    expect(broken.status).toBe(400);
    expect(broken.json.error.message).toMatch(/not valid JSON/);
    expect((await post("/v1/completions", { model: "tiny", prompt: [[1, 999999999]] })).status).toBe(400);
    expect((await fetch(`${server.url}/v1/nothing`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/chat/completions`)).status).toBe(405);
    // The server still answers.
    expect((await post("/v1/chat/completions", { model: "tiny", messages: QUESTION, max_tokens: 2, seed: 1 })).status).toBe(200);
  });

  it("a client that disconnects mid-stream does not take the server down", async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: QUESTION, max_tokens: 2000, seed: 1, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await expect(reader.read()).rejects.toThrow();
    const after = await post("/v1/chat/completions", { model: "tiny", messages: QUESTION, max_tokens: 8, seed: 1234 });
    expect(after.status).toBe(200);
    expect(after.json.choices[0].message.content).toBe(localAnswers(QUESTION, 1234, 1, 8)[0]);
  });

  it("the openai npm client: chat, streaming, completions, models, and its typed error for an unknown model", async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: "tiny", messages: QUESTION, max_tokens: 8, seed: 1234 });
    expect(chat.choices[0]!.message.content).toBe(localAnswers(QUESTION, 1234, 1, 8)[0]);
    const stream = await client.chat.completions.create({ model: "tiny", messages: QUESTION, max_tokens: 8, seed: 1234, stream: true });
    let streamed = "";
    for await (const part of stream) streamed += part.choices[0]?.delta?.content ?? "";
    expect(streamed).toBe(chat.choices[0]!.message.content);
    const completion = await client.completions.create({ model: "tiny-lora", prompt: "Hello", max_tokens: 4, seed: 1 });
    expect(completion.choices).toHaveLength(1);
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toContain("tiny-steer");
    await expect(client.chat.completions.create({ model: "missing", messages: QUESTION })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe("emlab serve resources", () => {
  it("requests (batched, streamed, cancelled, failed) leave no tensors behind", async () => {
    const body = { model: "tiny", messages: QUESTION, max_tokens: 5, seed: 1 };
    await post("/v1/chat/completions", body);
    const before = liveTensorCount();
    await Promise.all([
      post("/v1/chat/completions", { ...body, n: 3, logprobs: true, top_logprobs: 2 }),
      post("/v1/chat/completions", { ...body, model: "tiny-lora" }),
      post("/v1/completions", { model: "tiny-steer", prompt: ["a", "bb"], max_tokens: 4, seed: 2 }),
      streamEvents("/v1/chat/completions", body),
      post("/v1/chat/completions", { ...body, n: 0 }),
    ]);
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ ...body, max_tokens: 3000, stream: true }),
      signal: controller.signal,
    });
    await res.body!.getReader().read();
    controller.abort();
    await post("/v1/chat/completions", body);
    expect(liveTensorCount()).toBe(before);
  });

  it("closing the server while a request decodes waits for the engine and leaves the models usable", async () => {
    const other = await startServer(models, { port: 0 });
    const pending = fetch(`${other.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "tiny", messages: QUESTION, max_tokens: 3000, seed: 1 }),
    }).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 200));
    const before = Date.now();
    await other.close();
    expect(Date.now() - before).toBeLessThan(5000);
    expect(await pending).toBeInstanceOf(Error);
    expect(
      (await post("/v1/chat/completions", { model: "tiny", messages: QUESTION, max_tokens: 8, seed: 1234 })).json.choices[0].message
        .content,
    ).toBe(localAnswers(QUESTION, 1234, 1, 8)[0]);
  });
});

describe("emlab serve limits", () => {
  it("without max_tokens: a chat answer runs to the server's --max-tokens (or EOS), a completion to 16 tokens", async () => {
    const capped = await startServer(models, { port: 0, maxTokens: 20 });
    try {
      const chat = await post("/v1/chat/completions", { model: "tiny", messages: QUESTION, seed: 1 }, {}, capped.url);
      const used = chat.json.usage.completion_tokens;
      expect(chat.json.choices[0].finish_reason === "length" ? used === 20 : used < 20).toBe(true);
      expect(chat.json.choices[0].message.content).toBe(localAnswers(QUESTION, 1, 1, 20)[0]);
      const completion = await post("/v1/completions", { model: "tiny", prompt: "Hello", seed: 1 }, {}, capped.url);
      expect(completion.json.usage.completion_tokens).toBeLessThanOrEqual(16);
      expect((await post("/v1/completions", { model: "tiny", prompt: "Hello", max_tokens: 21 }, {}, capped.url)).status).toBe(400);
    } finally {
      await capped.close();
    }
  });

  it("a body over the limit is 413, a full queue 429, a slow request 408; the server keeps serving", async () => {
    const limited = await startServer(models, {
      port: 0,
      maxBodyBytes: 2000,
      maxQueue: 1,
      maxBatchRows: 1,
      batchWaitMs: 20,
      timeoutMs: 3000,
    });
    try {
      const big = await post(
        "/v1/chat/completions",
        { model: "tiny", messages: [{ role: "user", content: "x".repeat(5000) }] },
        {},
        limited.url,
      );
      expect(big.status).toBe(413);
      expect(big.json.error.message).toMatch(/over the limit/);
      const burst = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          post("/v1/chat/completions", { model: "tiny", messages: QUESTION, max_tokens: 4, seed: i }, {}, limited.url),
        ),
      );
      const statuses = burst.map((r) => r.status);
      expect(statuses).toContain(200);
      expect(statuses).toContain(429);
      const refused = burst.find((r) => r.status === 429)!;
      expect(refused.json.error.type).toBe("rate_limit_error");
      // A streaming request refused for a full queue gets the 429 status too (not an event in a 200 stream).
      const streamBurst = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          fetch(`${limited.url}/v1/chat/completions`, {
            method: "POST",
            body: JSON.stringify({ model: "tiny", messages: QUESTION, max_tokens: 4, seed: i, stream: true }),
          }).then(async (r) => ({ status: r.status, type: r.headers.get("content-type"), text: await r.text() })),
        ),
      );
      expect(streamBurst.map((r) => r.status)).toContain(429);
      for (const r of streamBurst.filter((x) => x.status === 429)) expect(JSON.parse(r.text).error.type).toBe("rate_limit_error");
      for (const r of streamBurst.filter((x) => x.status === 200)) expect(r.text.trim().endsWith("data: [DONE]")).toBe(true);
      const slow = await post("/v1/chat/completions", { model: "tiny", messages: QUESTION, max_tokens: 4000, seed: 1 }, {}, limited.url);
      expect(slow.status).toBe(408);
      expect(
        (await post("/v1/chat/completions", { model: "tiny", messages: QUESTION, max_tokens: 2, seed: 1 }, {}, limited.url)).status,
      ).toBe(200);
    } finally {
      await limited.close();
    }
  }, 60_000);

  it("a non-loopback host is refused without the flag or without a key; with both, the key is enforced", async () => {
    await expect(startServer(models, { host: "0.0.0.0", port: 0 })).rejects.toBeInstanceOf(ServeConfigError);
    await expect(startServer(models, { host: "0.0.0.0", port: 0, allowNonLoopback: true })).rejects.toThrow(/API key is required/);
    const exposed = await startServer(models, { host: "0.0.0.0", port: 0, allowNonLoopback: true, apiKey: "s3cret" });
    try {
      const url = `http://127.0.0.1:${exposed.port}`;
      const body = { model: "tiny", messages: QUESTION, max_tokens: 2, seed: 1 };
      expect((await post("/v1/chat/completions", body, {}, url)).status).toBe(401);
      const wrong = await post("/v1/chat/completions", body, { authorization: "Bearer nope" }, url);
      expect(wrong.status).toBe(401);
      expect(wrong.json.error.type).toBe("authentication_error");
      expect((await post("/v1/chat/completions", body, { authorization: "Bearer s3cret" }, url)).status).toBe(200);
      expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    } finally {
      await exposed.close();
    }
  });
});
