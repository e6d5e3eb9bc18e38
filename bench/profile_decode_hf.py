"""Where a decode step's time goes on the Hugging Face side (the counterpart of bench/profile-decode.ts):
torch.profiler over `generate` (sampling, KV cache) on a bench model directory, a prefill-only run
subtracted from a whole run, so the table is per decode step. Ops grouped by input shapes, so the
q/k/v/o, gate/up/down and lm_head products show separately.
  python bench/profile_decode_hf.py MODEL_DIR [BATCH] [NEW_TOKENS]
"""
import sys
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM


def main(directory, batch, new_tokens):
    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="sdpa").eval()
    vocab = model.config.vocab_size
    prompts = torch.randint(3, vocab, (batch, 32), generator=torch.Generator().manual_seed(1))
    kwargs = dict(attention_mask=torch.ones_like(prompts), do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=0, eos_token_id=None)

    def gen(n):
        model.generate(input_ids=prompts, max_new_tokens=n, min_new_tokens=n, **kwargs)

    def profiled(n):
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            gen(n)
        table = defaultdict(lambda: [0.0, 0])
        for e in prof.key_averages(group_by_input_shape=True):
            key = e.key
            if key in ("aten::mm", "aten::addmm", "aten::linear", "aten::matmul", "aten::bmm"):
                key += str([s for s in e.input_shapes if s][:2])
            table[key][0] += e.self_cpu_time_total / 1000
            table[key][1] += e.count
        return table, prof

    with torch.inference_mode():
        gen(2)  # warm-up
    t = time.perf_counter()
    with torch.inference_mode():
        gen(1)
    prefill = time.perf_counter() - t
    t = time.perf_counter()
    with torch.inference_mode():
        gen(new_tokens)
    total = time.perf_counter() - t
    steps = new_tokens - 1
    print({"batch": batch, "newTokens": new_tokens, "prefill_s": prefill, "decode_step_ms": (total - prefill) / steps * 1000})
    pre, _ = profiled(1)
    whole, _ = profiled(new_tokens)
    rows = []
    for key, (ms, count) in whole.items():
        p_ms, p_count = pre.get(key, (0.0, 0))
        rows.append(((ms - p_ms) / steps, (count - p_count) / steps, p_ms, key))
    rows.sort(reverse=True)
    print("per decode step self-CPU ms | calls | prefill ms | op")
    for ms, count, p_ms, key in rows[:30]:
        print(f"{ms:9.2f} ms {count:6.1f} {p_ms:9.1f}  {key}")
    print(f"sum of self-CPU per decode step: {sum(r[0] for r in rows):.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8, int(sys.argv[3]) if len(sys.argv) > 3 else 8)
