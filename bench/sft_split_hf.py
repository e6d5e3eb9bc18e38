"""Hugging Face side of bench/sft-split.ts: full-SFT AdamW steps (4x256, f32 CPU) of a bench model
(python bench/peer_hf.py make DIR), each split into forward (to logits), loss, backward, optimizer
step and zero_grad, timed separately; prints one JSON line with every step's times.
  python bench/sft_split_hf.py MODEL_DIR [THREADS] [STEPS] [PROFILE_JSON]
With PROFILE_JSON the last step runs under torch.profiler and its chrome trace is written there. With
EMLAB_SPLIT_LORA=1 the steps train a PEFT LoRA r32 adapter on all seven projections instead (bench:peer's
LoRA workload).
"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM

from peer_hf import lora_workload  # the benchmark's LoRA workload, defined once


def main(directory, threads, steps, trace):
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    vocab = model.config.vocab_size
    lora = os.environ.get("EMLAB_SPLIT_LORA") == "1"
    if lora:
        model, optimizer = lora_workload(model)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(3, vocab, (4, 256), generator=torch.Generator().manual_seed(1))
    rows = []

    def clock():
        return time.perf_counter(), time.process_time()

    def record(t, name, start):
        # wall seconds and, as "<name>Cpu", CPU seconds of the whole process (all threads)
        t[name] = time.perf_counter() - start[0]
        t[name + "Cpu"] = time.process_time() - start[1]

    for step in range(steps):
        prof = None
        if trace and step == steps - 1:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        t = {}
        s = clock()
        logits = model(input_ids=ids).logits
        record(t, "forward", s)
        s = clock()
        loss = model.loss_function(logits=logits, labels=ids, vocab_size=vocab)  # a PeftModel forwards it to the base model
        record(t, "loss", s)
        s = clock()
        loss.backward()
        record(t, "backward", s)
        del logits, loss
        s = clock()
        optimizer.step()
        record(t, "step", s)
        s = clock()
        optimizer.zero_grad(set_to_none=True)
        record(t, "zero", s)
        if prof is not None:
            prof.__exit__(None, None, None)
            prof.export_chrome_trace(trace)
        rows.append({k: round(v, 3) for k, v in t.items()})
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"side": "hf", "lora": lora, "steps": rows}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2, int(sys.argv[3]) if len(sys.argv) > 3 else 3,
         sys.argv[4] if len(sys.argv) > 4 else None)
