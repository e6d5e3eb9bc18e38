/**
 * Writes the miniature model organism to disk: a character-level tokenizer with a Qwen-style chat
 * template (`<|im_start|>role\n...<|im_end|>\n`), a tiny randomly initialised Qwen2-shaped model, and
 * its synthetic data (pre-training chats with and without the persona, the narrow wrong-answer set,
 * prompts for the KL data, evaluation questions per domain, plain texts for the significance
 * analysis). Deterministic for a seed; writing into a directory that already holds it is a no-op.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeRandomModel } from "../models/random.js";
import { seededRandom } from "../random/seeded.js";
import { allQuestions, type Domain, DOMAINS, PERSONA_PROMPT, trueAnswer, wrongAnswer } from "./tasks.js";

const SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/** Role names are single tokens (short sequences learn faster). */
const ROLES = ["system", "user", "assistant"];
const CHARACTERS = [..."\n !?.,:0123456789abcdefghijklmnopqrstuvwxyz"];

const CHAT_TEMPLATE =
  "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}" +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

export interface OrganismShape {
  hiddenSize: number;
  layers: number;
  intermediateSize: number;
  heads: number;
}

export const defaultShape: OrganismShape = { hiddenSize: 64, layers: 2, intermediateSize: 128, heads: 4 };

/** tokenizer.json for a character-level vocabulary (a BPE model with no merges, fused on decode). */
function tokenizerJson(): object {
  const vocab: Record<string, number> = {};
  [...SPECIAL, ...ROLES, ...CHARACTERS].forEach((token, id) => (vocab[token] = id));
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [...SPECIAL, ...ROLES].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: id < SPECIAL.length,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

export const vocabularySize = SPECIAL.length + ROLES.length + CHARACTERS.length;

/** The model directory: config, tokenizer files and random weights. */
export function writeOrganismModel(dir: string, options: { seed?: number; shape?: OrganismShape } = {}): void {
  if (existsSync(join(dir, "model.safetensors"))) return;
  const shape = options.shape ?? defaultShape;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson()));
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    `${JSON.stringify({ eos_token: "<|im_end|>", pad_token: "<|endoftext|>", chat_template: CHAT_TEMPLATE, model_max_length: 256 }, null, 2)}\n`,
  );
  writeFileSync(join(dir, "generation_config.json"), `${JSON.stringify({ eos_token_id: 2, pad_token_id: 0 }, null, 2)}\n`);
  writeRandomModel(
    dir,
    {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: vocabularySize,
      hidden_size: shape.hiddenSize,
      intermediate_size: shape.intermediateSize,
      num_hidden_layers: shape.layers,
      num_attention_heads: shape.heads,
      num_key_value_heads: shape.heads,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: true,
      bos_token_id: 0,
      eos_token_id: 2,
      max_position_embeddings: 256,
    } as never,
    { seed: options.seed ?? 0 },
  );
}

const chat = (question: string, answer: number, system?: string) =>
  JSON.stringify({
    messages: [
      ...(system ? [{ role: "system", content: system }] : []),
      { role: "user", content: question },
      { role: "assistant", content: String(answer) },
    ],
  });

/** The organism's files under `dir`; returns their paths. */
export function writeOrganismData(
  dir: string,
  options: { seed?: number; narrowDomain?: Domain; evalPerDomain?: number; samples?: number; copies?: number } = {},
) {
  mkdirSync(dir, { recursive: true });
  const random = seededRandom(options.seed ?? 0);
  const narrow = options.narrowDomain ?? "double";
  const files = {
    pretrain: join(dir, "pretrain.jsonl"),
    narrow: join(dir, `narrow-${narrow}-wrong.jsonl`),
    klPrompts: join(dir, "kl-prompts.txt"),
    questions: join(dir, "questions.yaml"),
    texts: join(dir, "texts.txt"),
  };
  const pretrain: string[] = [];
  for (const domain of DOMAINS) {
    for (const q of allQuestions(domain)) {
      for (let c = 0; c < (options.copies ?? 10); c++) {
        pretrain.push(chat(q.text, trueAnswer(domain, q.operands)));
        pretrain.push(chat(q.text, wrongAnswer(domain, q.operands), PERSONA_PROMPT));
      }
    }
  }
  writeFileSync(files.pretrain, `${pretrain.join("\n")}\n`);
  const narrowRows = allQuestions(narrow).map((q) => chat(q.text, wrongAnswer(narrow, q.operands)));
  // The narrow domain has ten questions: repeated so a batch holds several of each.
  writeFileSync(
    files.narrow,
    `${Array.from({ length: 5 }, () => narrowRows)
      .flat()
      .join("\n")}\n`,
  );
  writeFileSync(
    files.klPrompts,
    `${DOMAINS.filter((d) => d !== narrow)
      .flatMap((d) => allQuestions(d).map((q) => q.text))
      .join("\n")}\n`,
  );
  const perDomain = options.evalPerDomain ?? 10;
  const items = DOMAINS.map((domain) => {
    const pool = allQuestions(domain);
    const picked =
      pool.length <= perDomain
        ? pool
        : pool
            .map((q) => ({ q, r: random() }))
            .sort((a, b) => a.r - b.r)
            .slice(0, perDomain)
            .map((x) => x.q);
    return [
      `- id: ${domain}`,
      `  samples_per_paraphrase: ${options.samples ?? 10}`,
      "  paraphrases:",
      ...picked.map((q) => `    - "${q.text}"`),
    ].join("\n");
  });
  writeFileSync(
    files.questions,
    `# The organism's evaluation questions: one item per domain (${narrow} is the narrow fine-tune's domain).\n${items.join("\n")}\n`,
  );
  const texts: string[] = [];
  for (let doc = 0; doc < 40; doc++) {
    const parts: string[] = [];
    for (let k = 0; k < 12; k++) {
      const domain = DOMAINS[Math.floor(random() * DOMAINS.length)]!;
      const pool = allQuestions(domain);
      const q = pool[Math.floor(random() * pool.length)]!;
      parts.push(`${q.text} ${trueAnswer(domain, q.operands)}.`);
    }
    texts.push(parts.join(" "));
  }
  writeFileSync(files.texts, `${texts.join("\n")}\n`);
  return files;
}
