/**
 * Where a decode step's time goes (for speed work on generation): prefill + timed decode steps of
 * `generate` on a model directory, with every native addon call counted (per step and per layer) and
 * timed by name. Run it on a cut-down bench model (EMLAB_BENCH_LAYERS=4 python bench/peer_hf.py make DIR).
 *   EMLAB_NATIVE=build-torch2/Release/emlab.node npx tsx bench/profile-decode.ts MODEL_DIR [BATCH] [NEW_TOKENS]
 */
import { generate } from "../src/generate/generate.js";
import { loadModel } from "../src/models/load.js";
import { native } from "../src/native/addon.js";
import { inferenceMode, setNumThreads } from "../src/index.js";

const [dir, batchArg, newArg] = process.argv.slice(2);
if (!dir) {
  console.error("usage: npx tsx bench/profile-decode.ts MODEL_DIR [BATCH] [NEW_TOKENS]");
  process.exit(2);
}
setNumThreads(2);
const batch = Number(batchArg ?? 8);
const newTokens = Number(newArg ?? 16);
const model = loadModel(dir);
const vocab = model.spec.vocabSize;
const prompts = Array.from({ length: batch }, (_, b) => Array.from({ length: 32 }, (_, i) => 3 + ((b * 7919 + i * 104729) % (vocab - 3))));

const counts = new Map<string, number>();
const seconds = new Map<string, number>();
let counting = false;
const table = native as unknown as Record<string, unknown>;
for (const name of Object.keys(table)) {
  const fn = table[name];
  if (typeof fn !== "function") continue;
  table[name] = (...args: unknown[]) => {
    if (!counting) return (fn as (...a: unknown[]) => unknown)(...args);
    const start = process.hrtime.bigint();
    try {
      return (fn as (...a: unknown[]) => unknown)(...args);
    } finally {
      const ops = name === "unary" ? native.unaryOps : name === "binary" ? native.binaryOps : null;
      const label = ops ? `${name}:${ops[args[0] as number]}` : name;
      counts.set(label, (counts.get(label) ?? 0) + 1);
      seconds.set(label, (seconds.get(label) ?? 0) + Number(process.hrtime.bigint() - start) / 1e9);
    }
  };
}

const options = { temperature: 1, seed: 3 };
inferenceMode(() => void generate(model.decoder, prompts, null, { ...options, maxNewTokens: 2 })); // warm-up
const run = (n: number) => {
  const start = process.hrtime.bigint();
  inferenceMode(() => void generate(model.decoder, prompts, null, { ...options, maxNewTokens: n }));
  return Number(process.hrtime.bigint() - start) / 1e9;
};
const prefillOnly = run(1);
const total = run(newTokens);
const perStep = (total - prefillOnly) / (newTokens - 1);
counting = true;
const stepsTotal = run(newTokens);
counting = false;
const callsPerRun = [...counts.values()].reduce((a, b) => a + b, 0);
const layers = model.spec.layers.length;
console.log(
  JSON.stringify({ batch, newTokens, layers, prefill_s: prefillOnly, decode_step_ms: perStep * 1000, counted_run_s: stepsTotal }),
);
console.log(
  `native calls per run ${callsPerRun} (~${(callsPerRun / newTokens).toFixed(0)} per token step, ~${(callsPerRun / newTokens / layers).toFixed(1)} per layer-step)`,
);
const rows = [...counts].sort((a, b) => (seconds.get(b[0]) ?? 0) - (seconds.get(a[0]) ?? 0));
for (const [name, count] of rows.slice(0, 40))
  console.log(`${name.padEnd(28)} ${String(count).padStart(6)} calls ${(seconds.get(name)! * 1000).toFixed(1).padStart(9)} ms`);
