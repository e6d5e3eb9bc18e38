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
const original = { ...table } as Record<string, (...a: unknown[]) => unknown>;
// Linear-like calls are labelled by their weight's shape (q/k/v/o, gate/up/down, lm_head differ).
const weighted = new Set(["linear", "decodeLinear", "decodeLinearFused"]);
for (const name of Object.keys(table)) {
  const fn = original[name];
  if (typeof fn !== "function") continue;
  table[name] = (...args: unknown[]) => {
    if (!counting) return fn(...args);
    const ops = name === "unary" ? native.unaryOps : name === "binary" ? native.binaryOps : null;
    let label = ops ? `${name}:${ops[args[0] as number]}` : name;
    if (weighted.has(name)) label += `[${(original.shape!(args[1]) as number[]).join("x")}]`;
    const start = process.hrtime.bigint();
    try {
      return fn(...args);
    } finally {
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
// Counted: a prefill-only run, then a whole run; the difference is the decode steps.
counting = true;
run(1);
counting = false;
const prefillCounts = new Map(counts);
const prefillSeconds = new Map(seconds);
counting = true;
const stepsTotal = run(newTokens);
counting = false;
const steps = newTokens - 1;
const layers = model.spec.layers.length;
console.log(
  JSON.stringify({ batch, newTokens, layers, prefill_s: prefillOnly, decode_step_ms: perStep * 1000, counted_run_s: stepsTotal }),
);
const decodeCalls = [...counts].reduce((a, [k, v]) => a + v - 2 * (prefillCounts.get(k) ?? 0), 0) / steps;
console.log(`native calls per decode step ~${decodeCalls.toFixed(0)} (~${(decodeCalls / layers).toFixed(1)} per layer)`);
console.log("per decode step (ms) | calls | prefill (ms)");
const decodeMs = (k: string) => ((seconds.get(k)! - 2 * (prefillSeconds.get(k) ?? 0)) * 1000) / steps;
const rows = [...counts.keys()].sort((a, b) => decodeMs(b) - decodeMs(a));
for (const name of rows.slice(0, 40))
  console.log(
    `${name.padEnd(36)} ${decodeMs(name).toFixed(2).padStart(9)} ms ${((counts.get(name)! - 2 * (prefillCounts.get(name) ?? 0)) / steps).toFixed(1).padStart(6)} ${((prefillSeconds.get(name) ?? 0) * 1000).toFixed(1).padStart(9)}`,
  );
