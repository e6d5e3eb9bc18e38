#!/usr/bin/env bash
# npm run bench:peer: emlab vs transformers (+PEFT) on the SAME pip libtorch (the peer environment; emlab
# uses build-torch2/), one run each on a Qwen2.5-0.5B-shaped random model in f32 on CPU. Prints both
# sides' numbers, the ratios (speed-up of emlab: > 1 means emlab is faster) and peak memory.
#   scripts/bench-peer.sh [THREADS]   (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
# The same OpenMP setting on both sides: emlab's loader sets passive waiting (spinning OpenMP threads
# steal the few cores from OpenBLAS/MKL threads); the Python side gets it here so that it is no handicap.
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore
env_dir="$(bash scripts/peer-env.sh)"
py="$env_dir/bin/python"
if [ ! -f build-torch2/Release/emlab.node ]; then
  PYTHON="$py" LIBTORCH_USE_PYTORCH=1 npx cmake-js compile --out build-torch2 >/tmp/emlab-native-build-torch2.log 2>&1 || { cat /tmp/emlab-native-build-torch2.log; exit 1; }
fi
work="$(mktemp -d -t emlab-bench-peer-XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "bench:peer: writing the Qwen2.5-0.5B-shaped random model (f32) to $work/model" >&2
"$py" bench/peer_hf.py make "$work/model" >/dev/null
echo "bench:peer: transformers side" >&2
"$py" bench/peer_hf.py run "$work/model" "$threads" | tail -1 >"$work/hf.json"
echo "bench:peer: emlab side" >&2
EMLAB_NATIVE="$PWD/build-torch2/Release/emlab.node" npx tsx bench/peer.ts "$work/model" "$threads" | tail -1 >"$work/emlab.json"
node - "$work/hf.json" "$work/emlab.json" <<'JS'
const fs = require("node:fs");
const [hf, em] = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
console.log(`bench:peer  torch ${em.torch} (both sides), ${em.threads} threads, transformers ${hf.transformers}, peft ${hf.peft}; f32 CPU, Qwen2.5-0.5B shape`);
console.log("workload                              | transformers | emlab      | emlab speed-up | peak RSS MB HF / emlab");
const row = (name, key, peak) =>
  console.log(`${name.padEnd(37)} | ${(hf[key].toFixed(2) + " s").padStart(12)} | ${(em[key].toFixed(2) + " s").padStart(10)} | ${(hf[key] / em[key]).toFixed(2).padStart(13)}x | ${hf[peak].toFixed(0)} / ${em[peak].toFixed(0)}`);
row("forward 4x256", "forward_s", "forward_peak_mb");
row("sample batch 8, 32+64 tokens", "sample8_s", "sample8_peak_mb");
row("sample batch 32, 32+64 tokens", "sample32_s", "sample32_peak_mb");
row("LoRA r32 all-modules AdamW step 4x256", "lora_step_s", "lora_peak_mb");
row("full-SFT AdamW step 4x256", "sft_step_s", "sft_peak_mb");
console.log(`sampling new tokens/s: batch 8 HF ${hf.sample8_tokens_per_s.toFixed(1)} vs emlab ${em.sample8_tokens_per_s.toFixed(1)}; batch 32 HF ${hf.sample32_tokens_per_s.toFixed(1)} vs emlab ${em.sample32_tokens_per_s.toFixed(1)}`);
console.log("(peak RSS is cumulative over the phases, in the order listed)");
JS
