/**
 * Tokenizers and chat templates of a Hugging Face model directory: `tokenizer.json` +
 * `tokenizer_config.json` through @huggingface/tokenizers, `chat_template` (from the config or a
 * `chat_template.jinja` file) through @huggingface/jinja. Rendered chats are encoded without adding
 * special tokens (the template already has them). Assistant-token masks come from rendering prefixes.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { Data } from "effect";
import { readTextFile } from "../io/files.js";

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
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string")
    return (value as { content: string }).content;
  return null;
}

/**
 * The template of a tokenizer_config.json `chat_template`: a string, or transformers' list of named
 * templates (the one named "default"). Absent or null: none. Anything else is an error.
 */
function templateFromConfig(value: unknown, file: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const entry = value.find((e) => e !== null && typeof e === "object" && (e as { name?: unknown }).name === "default") as
      { template?: unknown } | undefined;
    if (entry && typeof entry.template === "string") return entry.template;
    if (entry === undefined)
      throw new TokenizerError({ message: `${file}: chat_template lists named templates but none named "default"`, file });
  }
  throw new TokenizerError({ message: `${file}: chat_template must be a string or a list of {name, template}`, file });
}

export class ChatTokenizer {
  private readonly template: Template | null;

  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly config: Record<string, unknown>,
    private readonly templateSource: string | null,
    private readonly file: string,
    templateFile: string,
  ) {
    try {
      this.template = templateSource !== null && templateSource.trim() !== "" ? new Template(templateSource) : null;
    } catch (error) {
      throw new TokenizerError({
        message: `${templateFile}: chat_template does not parse: ${(error as Error).message}`,
        file: templateFile,
      });
    }
  }

  /** Reads `tokenizer.json`, `tokenizer_config.json` and an optional `chat_template.jinja` from `dir`. */
  static fromDir(dir: string): ChatTokenizer {
    const read = (name: string): unknown => {
      const file = join(dir, name);
      try {
        return JSON.parse(readTextFile(file));
      } catch (error) {
        throw new TokenizerError({ message: `${file}: ${(error as Error).message}`, file });
      }
    };
    const isObject = (value: unknown): value is Record<string, unknown> =>
      value !== null && typeof value === "object" && !Array.isArray(value);
    const json = read("tokenizer.json");
    const tokenizerFile = join(dir, "tokenizer.json");
    if (!isObject(json)) throw new TokenizerError({ message: `${tokenizerFile}: not a JSON object`, file: tokenizerFile });
    const configFile = join(dir, "tokenizer_config.json");
    const config = existsSync(configFile) ? read("tokenizer_config.json") : {};
    if (!isObject(config)) throw new TokenizerError({ message: `${configFile}: not a JSON object`, file: configFile });
    const templateFile = join(dir, "chat_template.jinja");
    let template = templateFromConfig(config.chat_template, configFile);
    let templateOrigin = configFile;
    if (template === null && existsSync(templateFile)) {
      try {
        template = readTextFile(templateFile);
      } catch (error) {
        throw new TokenizerError({ message: `${templateFile}: ${(error as Error).message}`, file: templateFile });
      }
      templateOrigin = templateFile;
    }
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
    } catch (error) {
      throw new TokenizerError({ message: `${tokenizerFile}: ${(error as Error).message}`, file: tokenizerFile });
    }
    // Special (added) tokens alone cannot encode text: a vocabulary without ordinary tokens is unusable.
    if (![...tokenizer.get_vocab(false).keys()].some((token) => typeof token === "string" && token.length > 0)) {
      throw new TokenizerError({
        message: `${tokenizerFile}: the vocabulary is empty (no tokens besides the special ones)`,
        file: tokenizerFile,
      });
    }
    return new ChatTokenizer(tokenizer, config, template, dir, templateOrigin);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /**
   * Token ids of `text` (special tokens added per the tokenizer's post-processor unless disabled).
   * Non-empty text that encodes to nothing (a vocabulary that cannot represent it) is an error,
   * never a silently dropped prompt.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
    if (ids.length === 0 && /\S/.test(text)) {
      throw new TokenizerError({
        message: `${this.file}: the tokenizer encodes a non-empty text (${text.length} characters) to no tokens`,
        file: this.file,
      });
    }
    return ids;
  }

  /**
   * The ids a model is prompted with: the chat rendered by the template with a generation prompt;
   * with `rawText`, the user text alone, untemplated (only on explicit request, and without a system
   * message). A model without a chat template is an error otherwise, as in transformers.
   */
  promptIds(messages: readonly ChatMessage[], options: ChatTemplateOptions & { rawText?: boolean } = {}): number[] {
    if (options.rawText) {
      if (messages.length !== 1 || messages[0]!.role !== "user") {
        throw new TokenizerError({
          message: `${this.file}: raw-text prompting takes a single user message (no system message)`,
          file: this.file,
        });
      }
      return this.encode(messages[0]!.content);
    }
    return this.encodeChat(messages, { ...options, addGenerationPrompt: true });
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
    if (!this.template) {
      throw new TokenizerError({
        message: `${this.file}: no chat template (tokenizer_config.json has no chat_template and there is no chat_template.jinja); chat use needs one (raw-text prompting must be asked for explicitly)`,
        file: this.file,
      });
    }
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
    // Each message's text must be representable: a vocabulary that encodes it to nothing would leave
    // only the template's special tokens, silently dropping the prompt.
    for (const m of messages) this.encode(m.content, { addSpecialTokens: false });
    const ids = this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
    if (ids.length === 0 && messages.length > 0) {
      throw new TokenizerError({
        message: `${this.file}: the chat template renders ${messages.length} message(s) as an empty text`,
        file: this.file,
      });
    }
    return ids;
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
    return (this.templateSource ?? "").includes(token);
  }

  /** The pad id: pad_token if configured, else null. */
  get padTokenId(): number | null {
    const pad = tokenText(this.config.pad_token);
    return pad === null ? null : (this.tokenId(pad) ?? null);
  }
}
