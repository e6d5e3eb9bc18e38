/**
 * `emlab chat --model DIR [--system TEXT] [--max-new-tokens N] [sampling flags]`: an interactive
 * conversation on the model's chat template, streaming each reply as it is generated.
 * Commands: /reset clears the conversation, /exit (or end of input) quits.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { generate } from "../generate/generate.js";
import type { ChatMessage } from "../tokenizer/tokenizer.js";
import { UsageError } from "./args.js";
import { samplingFrom, samplingOptions, stopIds, tokenizerFor } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";

export async function runChat(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { ...modelOptions, ...samplingOptions, system: { type: "string" } }, strict: true });
  const sampling = samplingFrom({ ...values, "max-new-tokens": values["max-new-tokens"] ?? "512" });
  const model = openModel(values);
  const tokenizer = tokenizerFor(model);
  if (!tokenizer || !tokenizer.hasChatTemplate) {
    model.dispose();
    throw new UsageError(`chat needs tokenizer.json with a chat_template in ${model.dir}`);
  }
  const stops = stopIds(model, tokenizer);
  const history: ChatMessage[] = values.system ? [{ role: "system", content: values.system }] : [];
  const rl = createInterface({ input: process.stdin, terminal: false });
  process.stdout.write(`emlab chat (${model.spec.family}, ${model.spec.layers.length} layers). /reset, /exit.\n`);
  try {
    process.stdout.write("> ");
    // The async iterator buffers lines that arrive while a reply is being generated (piped input).
    for await (const line of rl) {
      const text = line.trim();
      if (text === "/exit") break;
      if (text === "/reset") {
        history.splice(values.system ? 1 : 0);
        process.stdout.write("> ");
        continue;
      }
      if (text === "") {
        process.stdout.write("> ");
        continue;
      }
      history.push({ role: "user", content: text });
      const ids = tokenizer.encodeChat(history, { addGenerationPrompt: true });
      let printed = "";
      const reply: number[] = [];
      const result = generate(model.decoder, [ids], null, {
        ...sampling,
        eosTokenIds: stops,
        onStep: ([token]) => {
          if (token === undefined || stops.includes(token)) return;
          reply.push(token);
          const decoded = tokenizer.decode(reply, { skipSpecialTokens: true });
          process.stdout.write(decoded.slice(printed.length));
          printed = decoded;
        },
      });
      process.stdout.write("\n");
      history.push({ role: "assistant", content: tokenizer.decode(result.newIds[0]!.filter((t) => !stops.includes(t)), { skipSpecialTokens: true }) });
      process.stdout.write("> ");
    }
  } finally {
    rl.close();
    model.dispose();
  }
  return 0;
}
