#!/usr/bin/env bash
# npm run bench:peer: emlab vs transformers (+PEFT) on the SAME pip libtorch (the peer environment; emlab
# uses build-torch2/), one run each on a Qwen2.5-0.5B-shaped random model in f32 on CPU. Prints both
# sides' numbers, the ratios (speed-up of emlab: > 1 means emlab is faster) and peak memory.
#   scripts/bench-peer.sh [THREADS]   (default 2)
# For iterating on speed: EMLAB_BENCH_LAYERS=4 (a cut-down model: same layer shapes, vocabulary and
# head), EMLAB_BENCH_PHASES=forward,sample,lora,sft, EMLAB_BENCH_BATCHES=8,32, EMLAB_BENCH_NEW_TOKENS=64
# select the same work on both sides; EMLAB_BENCH_MODEL=DIR reuses (or writes once) the model there.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
# The same OpenMP setting on both sides: emlab's loader default, a bounded spin of idle OpenMP threads
# (GOMP_SPINCOUNT=30000, src/native/addon.ts), given to the Python side too. Measured here at batch 8
# it was also transformers' fastest (21.5 s against 22.4 s with libgomp's default and 23.4 s passive).
unset OMP_WAIT_POLICY
export GOMP_SPINCOUNT=30000 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore
env_dir="$(bash scripts/peer-env.sh)"
py="$env_dir/bin/python"
if [ ! -f build-torch2/Release/emlab.node ]; then
  PYTHON="$py" LIBTORCH_USE_PYTORCH=1 npx cmake-js compile --out build-torch2 >/tmp/emlab-native-build-torch2.log 2>&1 || { cat /tmp/emlab-native-build-torch2.log; exit 1; }
fi
work="$(mktemp -d -t emlab-bench-peer-XXXXXX)"
trap 'rm -rf "$work"' EXIT
model="${EMLAB_BENCH_MODEL:-$work/model}"
if [ ! -f "$model/model.safetensors" ]; then
  echo "bench:peer: writing the Qwen2.5-0.5B-shaped random model (f32${EMLAB_BENCH_LAYERS:+, $EMLAB_BENCH_LAYERS layers}) to $model" >&2
  "$py" bench/peer_hf.py make "$model" >/dev/null
fi
# The load average goes next to every number: the cores may be shared, and wall times follow the load.
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "bench:peer: transformers side (load $(load))" >&2
load_hf="$(load)"
"$py" bench/peer_hf.py run "$model" "$threads" | tail -1 >"$work/hf.json"
echo "bench:peer: emlab side (load $(load))" >&2
load_em="$(load)"
EMLAB_NATIVE="$PWD/build-torch2/Release/emlab.node" npx tsx bench/peer.ts "$model" "$threads" | tail -1 >"$work/emlab.json"
BENCH_LOADS="HF side started at load $load_hf, emlab side at $load_em, ended at $(load)" node - "$work/hf.json" "$work/emlab.json" <<'JS'
const fs = require("node:fs");
const [hf, em] = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
const layers = process.env.EMLAB_BENCH_LAYERS ? `, cut down to ${process.env.EMLAB_BENCH_LAYERS} layers` : "";
console.log(`bench:peer  torch ${em.torch} (both sides), ${em.threads} threads, transformers ${hf.transformers}, peft ${hf.peft}; f32 CPU, Qwen2.5-0.5B shape${layers}`);
console.log(`(${process.env.BENCH_LOADS}; load averages 1/5/15 min)`);
// CPU s: CPU seconds of each whole process (all threads) for the same phase; on a shared machine the
// steadier comparison, since wall time also counts the time other processes held the cores.
console.log("workload                              | transformers | emlab      | emlab speed-up | CPU s HF / emlab (speed-up) | peak RSS MB HF / emlab");
const cpu = (key) => {
  const k = key.replace(/_s$/, "_cpu_s");
  return k in hf && k in em ? `${hf[k].toFixed(1)} / ${em[k].toFixed(1)} (${(hf[k] / em[k]).toFixed(2)}x)` : "-";
};
const row = (name, key, peak) =>
  key in hf && key in em &&
  console.log(`${name.padEnd(37)} | ${(hf[key].toFixed(2) + " s").padStart(12)} | ${(em[key].toFixed(2) + " s").padStart(10)} | ${(hf[key] / em[key]).toFixed(2).padStart(13)}x | ${cpu(key).padStart(27)} | ${hf[peak].toFixed(0)} / ${em[peak].toFixed(0)}`);
row("forward 4x256", "forward_s", "forward_peak_mb");
const fresh = process.env.EMLAB_BENCH_NEW_TOKENS ?? "64";
for (const batch of (process.env.EMLAB_BENCH_BATCHES ?? "8,32").split(",")) row(`sample batch ${batch}, 32+${fresh} tokens`, `sample${batch}_s`, `sample${batch}_peak_mb`);
row("LoRA r32 all-modules AdamW step 4x256", "lora_step_s", "lora_peak_mb");
row("full-SFT AdamW step 4x256", "sft_step_s", "sft_peak_mb");
for (const batch of (process.env.EMLAB_BENCH_BATCHES ?? "8,32").split(","))
  if (`sample${batch}_s` in hf && `sample${batch}_s` in em)
    console.log(`sampling new tokens/s, batch ${batch}: HF ${hf[`sample${batch}_tokens_per_s`].toFixed(1)} vs emlab ${em[`sample${batch}_tokens_per_s`].toFixed(1)}`);
console.log("(peak RSS is cumulative over the phases, in the order listed)");
JS
