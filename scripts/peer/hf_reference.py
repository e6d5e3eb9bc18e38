"""Hugging Face transformers / PEFT as a reference for emlab (runs in the peer environment only).

  python scripts/peer/hf_reference.py JOB.json

JOB.json is {"tasks": [...]}; each task is one of
  {"kind": "model", "dir": D, "config": {...config.json fields incl. model_type}, "seed": S}
      builds a random model (eager attention, float32, norm weights perturbed so that every norm matters),
      saves it to D (config.json, model.safetensors) and D/expected.safetensors with the reference outputs
      (see EXPECTED below).
  {"kind": "peft_create", "base": D, "dir": A, "lora": {LoraConfig kwargs}, "seed": S}
      puts a PEFT LoRA adapter with non-zero A and B on the model in D, saves it to A and writes
      A/expected.safetensors (input_ids, logits).
  {"kind": "peft_load", "base": D, "adapters": [{"name": N, "dir": A}], "ids": FILE, "out": FILE}
      loads emlab-saved adapters with PeftModel, activates all of them and writes the logits for the
      input_ids in FILE (a safetensors file) to `out`.
  {"kind": "tokenizer", "dir": T, "texts": [...], "conversations": [[messages]...], "out": FILE}
      ids with and without special tokens, decodes, chat renders (text and ids, with and without the
      generation prompt) through transformers' AutoTokenizer and apply_chat_template, as JSON.
A task that fails is reported in JOB.json's sibling JOB.errors.json and the script exits 1 at the end.

EXPECTED (model tasks): input_ids [2,16]; logits; hidden_states.{i} (0 = embeddings, last = after the final
norm); labels (first 5 positions -100); loss [1]; grad.<name> for every parameter; greedy.input_ids [2,8],
greedy.output_ids [2,16], greedy.margins [2,8] (top-1 minus top-2 logit at each greedy step: a near-tie
explains a token difference); padded.input_ids / padded.attention_mask [2,12] (row 1 left-padded with 4
pads, id 0); padded.logits; padded.greedy_output_ids [2,20]; padded.greedy_margins [2,8].
"""
import copy
import json
import re
import os
import sys
import traceback

import torch
import safetensors.torch as st
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def versions():
    import peft
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def build_model(config_fields, seed):
    fields = dict(config_fields)
    model_type = fields.pop("model_type")
    fields.pop("architectures", None)
    # JSON has one number type; transformers' strict config fields tell int from float. Retry with
    # float where a field says so.
    for _ in range(len(fields) + 1):
        try:
            config = AutoConfig.for_model(model_type, **fields)
            break
        except Exception as error:
            found = re.search(r"field '(\w+)'", str(error))
            field = found.group(1) if found else None
            if field in fields and isinstance(fields[field], int) and "expected float" in str(error):
                fields[field] = float(fields[field])
            else:
                raise
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
            elif name.endswith(".bias"):
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
    model.eval()
    return model


def greedy(model, ids, mask, steps):
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                         pad_token_id=0, eos_token_id=None, output_scores=True, return_dict_in_generate=True)
    margins = []
    for scores in out.scores:
        top = torch.topk(scores.float(), 2, dim=-1).values
        margins.append(top[:, 0] - top[:, 1])
    return out.sequences.contiguous(), torch.stack(margins, dim=1).contiguous()


def model_task(task):
    model = build_model(task["config"], task["seed"])
    out_dir = task["dir"]
    model.save_pretrained(out_dir, safe_serialization=True)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(task["seed"] + 2)
    ids = torch.randint(1, vocab, (2, 16), generator=generator)
    expected = {"input_ids": ids}
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    expected["logits"] = out.logits.float().contiguous()
    for i, hidden in enumerate(out.hidden_states):
        expected["hidden_states.%d" % i] = hidden.float().contiguous()
    labels = ids.clone()
    labels[:, :5] = -100
    expected["labels"] = labels
    model.zero_grad()
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    expected["loss"] = loss.detach().reshape(1)
    for name, param in model.named_parameters():
        if param.grad is not None:
            expected["grad." + name] = param.grad.float().contiguous()
    model.zero_grad()
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :4] = 0
    padded = ids[:, :12].clone()
    padded[1, :4] = 0
    expected["padded.input_ids"] = padded
    expected["padded.attention_mask"] = mask
    with torch.no_grad():
        expected["greedy.input_ids"] = ids[:, :8].contiguous()
        expected["greedy.output_ids"], expected["greedy.margins"] = greedy(model, ids[:, :8], torch.ones(2, 8, dtype=torch.long), 8)
        expected["padded.greedy_output_ids"], expected["padded.greedy_margins"] = greedy(model, padded, mask, 8)
        expected["padded.logits"] = model(input_ids=padded, attention_mask=mask).logits.float().contiguous()
    st.save_file(expected, os.path.join(out_dir, "expected.safetensors"))
    return model


def load_base(base_dir):
    model = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    return model


def peft_create_task(task, models):
    from peft import LoraConfig, get_peft_model
    base = models.get(task["base"]) or load_base(task["base"])
    torch.manual_seed(task["seed"])
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(**task["lora"], lora_dropout=0.0, init_lora_weights=False))
    peft_model.eval()
    peft_model.save_pretrained(task["dir"])
    ids = st.load_file(os.path.join(task["base"], "expected.safetensors"))["input_ids"]
    with torch.no_grad():
        logits = peft_model(input_ids=ids).logits.float().contiguous()
    st.save_file({"input_ids": ids, "logits": logits}, os.path.join(task["dir"], "expected.safetensors"))


def peft_load_task(task, models):
    from peft import PeftModel
    base = copy.deepcopy(models.get(task["base"]) or load_base(task["base"]))
    adapters = task["adapters"]
    model = PeftModel.from_pretrained(base, adapters[0]["dir"], adapter_name=adapters[0]["name"])
    for adapter in adapters[1:]:
        model.load_adapter(adapter["dir"], adapter_name=adapter["name"])
    # Several adapters at once: every one of them adds its update (emlab sums active adapters too).
    model.base_model.set_adapter([a["name"] for a in adapters])
    model.eval()
    ids = st.load_file(task["ids"])["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float().contiguous()
    st.save_file({"logits": logits}, task["out"])


def tokenizer_task(task):
    tok = AutoTokenizer.from_pretrained(task["dir"])
    result = {"class": type(tok).__name__, "encode": [], "chat": []}
    for text in task["texts"]:
        plain = tok.encode(text, add_special_tokens=False)
        result["encode"].append({"text": text, "ids_no_special": plain, "ids": tok.encode(text), "decoded": tok.decode(plain)})
    for messages in task["conversations"]:
        for prompt in (True, False):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
            ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=prompt)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            result["chat"].append({"messages": messages, "add_generation_prompt": prompt, "text": text, "ids": list(ids)})
    with open(task["out"], "w", encoding="utf8") as f:
        json.dump(result, f, ensure_ascii=False)


def run(job_file):
    with open(job_file, encoding="utf8") as f:
        job = json.load(f)
    torch.set_num_threads(max(1, int(os.environ.get("EMLAB_PEER_THREADS", torch.get_num_threads()))))
    models, errors = {}, []
    for task in job["tasks"]:
        try:
            kind = task["kind"]
            if kind == "model":
                models[task["dir"]] = model_task(task)
            elif kind == "peft_create":
                peft_create_task(task, models)
            elif kind == "peft_load":
                peft_load_task(task, models)
            elif kind == "tokenizer":
                tokenizer_task(task)
            else:
                raise ValueError("unknown task kind %r" % kind)
        except Exception:
            errors.append({"task": task, "error": traceback.format_exc()})
    with open(os.path.splitext(job_file)[0] + ".versions.json", "w") as f:
        json.dump(versions(), f)
    if errors:
        with open(os.path.splitext(job_file)[0] + ".errors.json", "w") as f:
            json.dump(errors, f, indent=1)
        for e in errors:
            print(e["error"], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    run(sys.argv[1])
