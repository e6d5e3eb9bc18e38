"""Hugging Face side of `npm run bench:peer` (runs in the peer environment): the same workloads as
bench/peer.ts on the same Qwen2.5-0.5B-shaped random model, with transformers (+PEFT), printed as one
JSON line. `python bench/peer_hf.py make MODEL_DIR` writes the model; `python bench/peer_hf.py run MODEL_DIR`
measures. Phases run from least to most memory so that the cumulative peak RSS after each is telling.
"""
import json
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

SHAPE = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
             num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=32768, tie_word_embeddings=True,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, pad_token_id=0, bos_token_id=1, eos_token_id=2)
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_workload(model):
    """The LoRA workload (bench/lora-workload.ts on emlab's side): a PEFT r32 adapter (alpha 64, no dropout)
    on all seven projections, and AdamW (lr 1e-4) over its parameters. Returns (peft_model, optimizer)."""
    from peft import LoraConfig, get_peft_model
    lora = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, target_modules=ALL))
    return lora, torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-4)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CPU = {"last": 0.0}


def timed(fn):
    # Wall seconds; CPU["last"] gets the CPU seconds of the whole process (all threads), the steadier
    # measure on a shared machine (wall time also counts the time other processes held the cores).
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    CPU["last"] = time.process_time() - cpu
    return time.perf_counter() - start


def make(directory):
    # $EMLAB_BENCH_SHAPE (JSON) overrides shape fields, e.g. for a quick smoke run of the script itself.
    # $EMLAB_BENCH_LAYERS sets only the layer count (a cut-down model for iterating on speed: same
    # per-layer shapes, vocabulary and head).
    SHAPE.update(json.loads(os.environ.get("EMLAB_BENCH_SHAPE", "{}")))
    if os.environ.get("EMLAB_BENCH_LAYERS"):
        SHAPE["num_hidden_layers"] = int(os.environ["EMLAB_BENCH_LAYERS"])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(**SHAPE), dtype=torch.float32)
    model.save_pretrained(directory, safe_serialization=True)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))


def run(directory, threads):
    # $EMLAB_BENCH_PHASES (e.g. "forward,sample") and $EMLAB_BENCH_BATCHES (e.g. "8") select what runs,
    # $EMLAB_BENCH_NEW_TOKENS the sampled length (default 64); bench/peer.ts reads the same variables.
    phases = set(os.environ.get("EMLAB_BENCH_PHASES", "forward,sample,lora,sft").split(","))
    batches = [int(b) for b in os.environ.get("EMLAB_BENCH_BATCHES", "8,32").split(",")]
    new_tokens = int(os.environ.get("EMLAB_BENCH_NEW_TOKENS", "64"))
    torch.set_num_threads(threads)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    import transformers, peft
    out["transformers"], out["peft"] = transformers.__version__, peft.__version__
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (4, 256), generator=g)

    if "forward" in phases:
        with torch.inference_mode():
            model(input_ids=ids[:1, :32])  # warm-up
            out["forward_s"] = timed(lambda: model(input_ids=ids))
            out["forward_cpu_s"] = CPU["last"]
        out["forward_peak_mb"] = peak_mb()
        print(json.dumps(out), file=sys.stderr)

    for batch in batches if "sample" in phases else []:
        prompts = torch.randint(3, vocab, (batch, 32), generator=g)
        mask = torch.ones_like(prompts)
        kwargs = dict(attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=0, eos_token_id=None)
        with torch.inference_mode():
            model.generate(input_ids=prompts, max_new_tokens=2, min_new_tokens=2, **kwargs)  # warm-up
            seconds = timed(lambda: model.generate(input_ids=prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs))
        out["sample%d_s" % batch] = seconds
        out["sample%d_cpu_s" % batch] = CPU["last"]
        out["sample%d_tokens_per_s" % batch] = batch * new_tokens / seconds
        out["sample%d_peak_mb" % batch] = peak_mb()
        print(json.dumps(out), file=sys.stderr)

    if "lora" in phases or "sft" in phases:
        train(model, ids, phases, out)
    print(json.dumps(out))


def train(model, ids, phases, out):
    model.train()
    lora, optimizer = lora_workload(model)

    def train_step(m, opt):
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    # One timed step each (on 2 cores a step of this model takes minutes); it includes allocating the
    # AdamW state on both sides alike.
    if "lora" in phases:
        out["lora_step_s"] = timed(lambda: train_step(lora, optimizer))
        out["lora_step_cpu_s"] = CPU["last"]
        out["lora_peak_mb"] = peak_mb()
        print(json.dumps(out), file=sys.stderr)
    model = lora.unload()
    del lora, optimizer
    if "sft" not in phases:
        return
    for p in model.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    out["sft_step_s"] = timed(lambda: train_step(model, optimizer))
    out["sft_step_cpu_s"] = CPU["last"]
    out["sft_peak_mb"] = peak_mb()


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("make", "run"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        run(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
