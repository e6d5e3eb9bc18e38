/**
 * Tokenizers and chat templates of a Hugging Face model directory: `tokenizer.json` +
 * `tokenizer_config.json` through @huggingface/tokenizers, `chat_template` (from the config or a
 * `chat_template.jinja` file) through @huggingface/jinja. Rendered chats are encoded without adding
 * special tokens (the template already has them). Assistant-token masks come from rendering prefixes.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { Data } from "effect";

/** Missing or unreadable tokenizer files, or a template that fails to render. */
export class TokenizerError extends Data.TaggedError("TokenizerError")<{ readonly message: string; readonly file: string }> {}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | (string & {});
  content: string;
}

export interface ChatTemplateOptions {
  /** Append the assistant header so the model answers next. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. enable_thinking for Qwen3). */
  variables?: Record<string, unknown>;
}

/** Tokens that end an assistant turn in the supported chat formats. */
const END_OF_TURN = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<eos>"];

function tokenText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") return (value as { content: string }).content;
  return null;
}

export class ChatTokenizer {
  private readonly template: Template | null;

  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly config: Record<string, unknown>,
    templateSource: string | null,
    private readonly file: string,
  ) {
    this.template = templateSource ? new Template(templateSource) : null;
  }

  /** Reads `tokenizer.json`, `tokenizer_config.json` and an optional `chat_template.jinja` from `dir`. */
  static fromDir(dir: string): ChatTokenizer {
    const read = (name: string): unknown => {
      const file = join(dir, name);
      try {
        return JSON.parse(readFileSync(file, "utf8"));
      } catch (error) {
        throw new TokenizerError({ message: `${file}: ${(error as Error).message}`, file });
      }
    };
    const json = read("tokenizer.json") as Record<string, unknown>;
    const config = existsSync(join(dir, "tokenizer_config.json")) ? (read("tokenizer_config.json") as Record<string, unknown>) : {};
    const templateFile = join(dir, "chat_template.jinja");
    let template = typeof config.chat_template === "string" ? config.chat_template : null;
    if (template === null && existsSync(templateFile)) template = readFileSync(templateFile, "utf8");
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
    } catch (error) {
      throw new TokenizerError({ message: `${join(dir, "tokenizer.json")}: ${(error as Error).message}`, file: join(dir, "tokenizer.json") });
    }
    return new ChatTokenizer(tokenizer, config, template, dir);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Token ids of `text` (special tokens added per the tokenizer's post-processor unless disabled). */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return "";
    return this.tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** The chat rendered by the model's template. */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.template) throw new TokenizerError({ message: `${this.file}: the tokenizer has no chat_template`, file: this.file });
    const special: Record<string, unknown> = {};
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const text = tokenText(this.config[key]);
      if (text !== null) special[key] = text;
    }
    try {
      return this.template.render({
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
        ...special,
        ...options.variables,
      });
    } catch (error) {
      throw new TokenizerError({ message: `${this.file}: chat template failed: ${(error as Error).message}`, file: this.file });
    }
  }

  /** Ids of the rendered chat (no extra special tokens). */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /**
   * Ids of the whole chat and a mask that is 1 on the tokens of each assistant turn: its content and
   * the end-of-turn token that closes it (what Hugging Face's `{% generation %}` blocks mark). A turn
   * starts where the conversation up to it, rendered with a generation prompt, stops matching; it
   * ends at the first end-of-turn token after that (templates such as Qwen3's render the last
   * assistant turn differently, so the turn's own render is not used).
   */
  assistantMask(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): { ids: number[]; mask: number[] } {
    const ids = this.encodeChat(messages, options);
    const mask = new Array<number>(ids.length).fill(0);
    const endIds = new Set(this.endOfTurnIds());
    for (let i = 0; i < messages.length; i++) {
      if (messages[i]!.role !== "assistant") continue;
      const start = this.commonPrefix(ids, this.encodeChat(messages.slice(0, i), { ...options, addGenerationPrompt: true }));
      let end = start;
      while (end < ids.length && !endIds.has(ids[end]!)) end++;
      end = Math.min(end + 1, ids.length);
      for (let t = start; t < end; t++) mask[t] = 1;
    }
    return { ids, mask };
  }

  private commonPrefix(a: readonly number[], b: readonly number[]): number {
    let n = 0;
    while (n < a.length && n < b.length && a[n] === b[n]) n++;
    return n;
  }

  /** Ids that end an assistant turn: the configured EOS plus the chat formats' end-of-turn tokens present in the vocabulary. */
  endOfTurnIds(extra: readonly number[] = []): number[] {
    const ids = new Set<number>(extra);
    const eos = tokenText(this.config.eos_token);
    for (const token of [...(eos ? [eos] : []), ...END_OF_TURN]) {
      const id = this.tokenId(token);
      if (id !== undefined && (token === eos || this.isEndOfTurnFor(token))) ids.add(id);
    }
    return [...ids];
  }

  /** End-of-turn tokens count only when the chat template uses them. */
  private isEndOfTurnFor(token: string): boolean {
    const source = typeof this.config.chat_template === "string" ? this.config.chat_template : "";
    return source.includes(token);
  }

  /** The pad id: pad_token if configured, else null. */
  get padTokenId(): number | null {
    const pad = tokenText(this.config.pad_token);
    return pad === null ? null : (this.tokenId(pad) ?? null);
  }
}
