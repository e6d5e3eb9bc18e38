/**
 * `emlab serve --model DIR [--lora NAME=DIR,...] [--steer NAME=FILE[:ALPHA],...]`: an OpenAI-compatible
 * server (src/serve/) until SIGINT/SIGTERM. Loopback by default; another host needs --allow-non-loopback
 * and --api-key-env VAR (the key is read from that variable, never from the command line).
 */
import { ServedModels, parseNamedPath } from "../serve/models.js";
import { checkExposure, startServer } from "../serve/server.js";
import { allDTypes, type DType, normalizeDevice } from "../tensor/index.js";
import { parseNumber, required, UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { defineCommand } from "./options.js";

export const serveCommand = defineCommand({
  name: "serve",
  summary: "OpenAI-compatible HTTP server (chat/completions, completions, models) with LoRA adapters and steering vectors as model names.",
  options: {
    model: { type: "string", value: "DIR", required: true, description: "local Hugging Face model directory" },
    "served-model-name": {
      type: "string",
      value: "NAME",
      description: "the base model's name in requests (default: the directory's name)",
    },
    lora: {
      type: "string",
      value: "NAME=DIR,...",
      description: "PEFT LoRA adapters served as model NAME (a directory with several adapters acts as one)",
    },
    steer: {
      type: "string",
      value: "NAME=FILE[:ALPHA],...",
      description: "trained steering vectors served as model NAME (ALPHA overrides the file's)",
    },
    dtype: { type: "string", value: "f32|bf16|f16|f64", default: "f32", description: "compute dtype of the weights" },
    device: { type: "string", value: "cpu|cuda[:N]", default: "cpu", description: "device to run on" },
    host: {
      type: "string",
      value: "HOST",
      default: "127.0.0.1",
      description: "address to bind (non-loopback needs --allow-non-loopback and --api-key-env)",
    },
    port: { type: "string", value: "PORT", default: "8000", description: "port (0: any free port, printed on start)" },
    "allow-non-loopback": { type: "boolean", description: "allow binding a non-loopback host (an API key is then required)" },
    "api-key-env": { type: "string", value: "VAR", description: "environment variable holding the API key requests must send as Bearer" },
    "max-queue": { type: "string", value: "N", default: "64", description: "requests waiting at most (then 429)" },
    "max-batch-rows": { type: "string", value: "N", default: "64", description: "rows (prompts x n) decoded together at most" },
    "max-tokens": { type: "string", value: "N", default: "4096", description: "largest max_tokens a request may ask for" },
    "max-n": { type: "string", value: "N", default: "128", description: "largest n a request may ask for" },
    "max-body-bytes": { type: "string", value: "N", default: "1048576", description: "request body size limit (then 413)" },
    "timeout-s": { type: "string", value: "S", default: "600", description: "per-request time limit (then 408)" },
  },
});

function namedList(flag: string, value: string | undefined, withAlpha: boolean) {
  if (value === undefined) return [];
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => parseNamedPath(flag, s, withAlpha));
}

export async function runServe(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(serveCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const modelDir = required("--model", values.model);
  const dtype = values.dtype as DType;
  if (!allDTypes.includes(dtype) || !["f32", "f16", "bf16", "f64"].includes(dtype))
    throw new UsageError(`--dtype: expected f32, bf16, f16 or f64, got ${JSON.stringify(values.dtype)}`);
  let device;
  try {
    device = normalizeDevice(values.device);
  } catch (error) {
    throw new UsageError(`--device: ${(error as Error).message}`);
  }
  const port = parseNumber("--port", values.port, { integer: true, min: 0, max: 65535 })!;
  let apiKey: string | null = null;
  const keyVar = values["api-key-env"];
  if (keyVar !== undefined) {
    apiKey = process.env[keyVar] ?? "";
    if (apiKey === "") throw new UsageError(`--api-key-env: the environment variable ${keyVar} is not set or empty`);
  }
  const host = values.host;
  // Refuse an exposed server before loading the model.
  checkExposure(host, { allowNonLoopback: values["allow-non-loopback"], apiKey });
  const lora = namedList("--lora", values.lora, false).map((l) => ({ name: l.name, dir: l.path }));
  const steer = namedList("--steer", values.steer, true).map((s) => ({
    name: s.name,
    file: s.path,
    ...(s.alpha === undefined ? {} : { alpha: s.alpha }),
  }));
  const models = new ServedModels({
    modelDir,
    ...(values["served-model-name"] ? { servedName: values["served-model-name"] } : {}),
    lora,
    steer,
    dtype,
    device,
  });
  try {
    const server = await startServer(models, {
      host,
      port,
      allowNonLoopback: values["allow-non-loopback"],
      apiKey,
      maxQueue: parseNumber("--max-queue", values["max-queue"], { integer: true, min: 1 })!,
      maxBatchRows: parseNumber("--max-batch-rows", values["max-batch-rows"], { integer: true, min: 1 })!,
      maxTokens: parseNumber("--max-tokens", values["max-tokens"], { integer: true, min: 1 })!,
      maxN: parseNumber("--max-n", values["max-n"], { integer: true, min: 1 })!,
      maxBodyBytes: parseNumber("--max-body-bytes", values["max-body-bytes"], { integer: true, min: 1 })!,
      timeoutMs: 1000 * parseNumber("--timeout-s", values["timeout-s"], { min: 0.001 })!,
      log: (line) => process.stderr.write(`emlab serve: ${line}\n`),
    });
    process.stderr.write(
      `emlab serve: models ${models.names.join(", ")}\nemlab serve: listening on ${server.url}${apiKey ? " (API key required)" : ""}\n`,
    );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    process.stderr.write("emlab serve: shutting down\n");
    await server.close();
  } finally {
    models.dispose();
  }
  return 0;
}
