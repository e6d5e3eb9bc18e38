/**
 * `emlab chat --model DIR [--system TEXT] [--max-new-tokens N] [sampling flags] [--steering FILE]`: an interactive
 * conversation on the model's chat template, streaming each reply as it is generated.
 * Commands: /reset clears the conversation, /exit (or end of input) quits.
 */
import { createInterface } from "node:readline";
import { generate } from "../generate/generate.js";
import type { ChatMessage } from "../tokenizer/tokenizer.js";
import { UsageError } from "./args.js";
import { parseOrHelp, samplingFrom, samplingOptions, stopIds, tokenizerFor } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand } from "./options.js";
import { attachSteering, steeringOptions } from "./steering-args.js";

export const chatCommand = defineCommand({
  name: "chat",
  summary: "Interactive conversation on the model's chat template, streaming each reply (/reset clears, /exit quits).",
  options: {
    ...modelOptions,
    ...samplingOptions("512"),
    system: { type: "string", value: "TEXT", description: "a system message at the start of the conversation" },
    ...steeringOptions,
  },
});

export async function runChat(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(chatCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const model = openModel(values);
  let detachSteering = () => {};
  const tokenizer = tokenizerFor(model);
  let sampling: ReturnType<typeof samplingFrom>;
  try {
    if (!tokenizer || !tokenizer.hasChatTemplate) throw new UsageError(`chat needs tokenizer.json with a chat_template in ${model.dir}`);
    sampling = samplingFrom(values, model);
    detachSteering = attachSteering(values, model);
  } catch (error) {
    model.dispose();
    throw error;
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
      history.push({
        role: "assistant",
        content: tokenizer.decode(
          result.newIds[0]!.filter((t) => !stops.includes(t)),
          { skipSpecialTokens: true },
        ),
      });
      process.stdout.write("> ");
    }
  } finally {
    rl.close();
    detachSteering();
    model.dispose();
  }
  return 0;
}
