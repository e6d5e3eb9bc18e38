/**
 * emlab side of `npm run bench:peer` (scripts/bench-peer.sh runs both sides on the same pip libtorch
 * and prints the ratios): the workloads of bench/peer_hf.py on the same Qwen2.5-0.5B-shaped random
 * model, f32 on CPU: forward 4x256, LoRA r32 (all seven projections) AdamW step 4x256, full-SFT AdamW
 * step 4x256, sampling batch 8 and 32 (prompt 32, 64 new tokens, KV cache), peak RSS after each phase
 * (cumulative, phases from least to most memory). Prints one JSON line.
 *   EMLAB_NATIVE=build-torch2/Release/emlab.node npx tsx bench/peer.ts MODEL_DIR [THREADS]
 */
import { generate } from "../src/generate/generate.js";
import { loadModel } from "../src/models/load.js";
import { causalLmLoss } from "../src/nn/losses.js";
import { AdamW } from "../src/optim/adamw.js";
import { attachLoraWorkload } from "./lora-workload.js";
import { inferenceMode, manualSeed, numThreads, randint, setNumThreads, tidy, torchVersion } from "../src/index.js";

const [dir, threadArg] = process.argv.slice(2);
// $EMLAB_BENCH_PHASES (e.g. "forward,sample,lora") runs only those phases (default: all).
const phases = new Set((process.env.EMLAB_BENCH_PHASES ?? "forward,sample,lora,sft").split(","));
// $EMLAB_BENCH_BATCHES (default "8,32") and $EMLAB_BENCH_NEW_TOKENS (default 64) shape the sampling phase, as in peer_hf.py.
const batches = (process.env.EMLAB_BENCH_BATCHES ?? "8,32").split(",").map(Number);
const newTokens = Number(process.env.EMLAB_BENCH_NEW_TOKENS ?? 64);
if (!dir) {
  console.error("usage: npx tsx bench/peer.ts MODEL_DIR [THREADS]");
  process.exit(2);
}
setNumThreads(Number(threadArg ?? 2));
const peakMb = (): number => process.resourceUsage().maxRSS / 1024;
// CPU seconds of the whole process (all threads) since `start`: on a shared machine the steadier
// measure of the work a phase did (wall time also counts the time other processes held the cores).
let cpuSeconds = 0;
const timed = (fn: () => void): number => {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  fn();
  const used = process.cpuUsage(cpu);
  cpuSeconds = (used.user + used.system) / 1e6;
  return Number(process.hrtime.bigint() - start) / 1e9;
};

const out: Record<string, number | string> = { torch: torchVersion, threads: numThreads() };
const model = loadModel(dir);
const vocab = model.spec.vocabSize;
manualSeed(1);
const ids = randint(3, vocab, [4, 256]);

if (phases.has("forward")) {
  inferenceMode(() => tidy(() => void model.decoder.forward(ids.narrow(0, 0, 1).narrow(1, 0, 32)))); // warm-up
  out.forward_s = timed(() => inferenceMode(() => tidy(() => void model.decoder.forward(ids))));
  out.forward_cpu_s = cpuSeconds;
  out.forward_peak_mb = peakMb();
  console.error(JSON.stringify(out));
}

for (const batch of phases.has("sample") ? batches : []) {
  const prompts = Array.from({ length: batch }, (_, b) =>
    Array.from({ length: 32 }, (_, i) => 3 + ((b * 7919 + i * 104729) % (vocab - 3))),
  );
  const options = { temperature: 1, seed: 3 };
  inferenceMode(() => void generate(model.decoder, prompts, null, { ...options, maxNewTokens: 2 })); // warm-up
  const seconds = timed(() => inferenceMode(() => void generate(model.decoder, prompts, null, { ...options, maxNewTokens: newTokens })));
  out[`sample${batch}_s`] = seconds;
  out[`sample${batch}_cpu_s`] = cpuSeconds;
  out[`sample${batch}_tokens_per_s`] = (batch * newTokens) / seconds;
  out[`sample${batch}_peak_mb`] = peakMb();
  console.error(JSON.stringify(out));
}

const trainStep = (optimizer: AdamW) => {
  tidy(() => causalLmLoss(model.decoder.forward(ids).logits!, ids).backward());
  optimizer.step();
  optimizer.zeroGrad();
};
if (phases.has("lora")) {
  const { adapter, optimizer } = attachLoraWorkload(model);
  // One timed step each (minutes on 2 cores), AdamW state allocation included, as on the Python side.
  out.lora_step_s = timed(() => trainStep(optimizer));
  out.lora_step_cpu_s = cpuSeconds;
  out.lora_peak_mb = peakMb();
  console.error(JSON.stringify(out));
  model.decoder.adapters.detach(adapter);
  model.decoder.adapters.training = false;
  optimizer.dispose();
  for (const t of adapter.parameters()) t.dispose();
}
if (phases.has("sft")) {
  const params = [...model.parameters.values()];
  for (const p of params) p.requiresGrad_();
  const optimizer = new AdamW(params, { lr: 1e-5 });
  out.sft_step_s = timed(() => trainStep(optimizer));
  out.sft_step_cpu_s = cpuSeconds;
  out.sft_peak_mb = peakMb();
}
console.log(JSON.stringify(out));
