/**
 * `--sample-endpoint URL --sample-model NAME [--sample-api-key-env VAR] [--sample-concurrency N]`: sample
 * through an OpenAI-compatible server (emlab serve, vLLM, ...) instead of the local engine. The key is
 * read from the named environment variable (never from the command line) and registered for redaction.
 */
import { registerSecret } from "../eval/judge/redact.js";
import { chatCompletionsUrl, type RemoteEndpoint } from "../eval/remote-sample.js";
import { parseNumber, UsageError } from "./args.js";

export const sampleEndpointOptions = {
  "sample-endpoint": {
    type: "string",
    value: "URL",
    description: "sample through this OpenAI-compatible server (base URL, e.g. http://127.0.0.1:8000/v1) instead of loading the model",
  },
  "sample-model": { type: "string", value: "NAME", description: "the served model or LoRA module name to sample (with --sample-endpoint)" },
  "sample-api-key-env": {
    type: "string",
    value: "VAR",
    description: "environment variable holding the server's API key (sent as Bearer; never logged)",
  },
  "sample-concurrency": {
    type: "string",
    value: "N",
    default: "4",
    description: "chunk requests in flight at once (with --sample-endpoint)",
  },
} as const;

type Values = { "sample-endpoint"?: string; "sample-model"?: string; "sample-api-key-env"?: string; "sample-concurrency"?: string };

/** The endpoint the options name, or null without --sample-endpoint. */
export function sampleEndpointFrom(values: Values): RemoteEndpoint | null {
  const url = values["sample-endpoint"];
  if (url === undefined) {
    for (const flag of ["sample-model", "sample-api-key-env"] as const)
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --sample-endpoint URL`);
    return null;
  }
  const model = values["sample-model"];
  if (model === undefined || model === "")
    throw new UsageError("--sample-endpoint needs --sample-model NAME (the served model or LoRA module)");
  try {
    chatCompletionsUrl(url);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  let apiKey: string | null = null;
  const keyVar = values["sample-api-key-env"];
  if (keyVar !== undefined) {
    apiKey = process.env[keyVar] ?? "";
    if (apiKey === "") throw new UsageError(`--sample-api-key-env: the environment variable ${keyVar} is not set or empty`);
    registerSecret(apiKey);
  }
  const concurrency = parseNumber("--sample-concurrency", values["sample-concurrency"] ?? "4", { integer: true, min: 1 })!;
  return { url, model, apiKey, concurrency };
}
