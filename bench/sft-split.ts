/**
 * emlab side of bench/sft_split_hf.py: full-SFT AdamW steps (4x256, f32 CPU) of a bench model, each split
 * into forward (to logits), loss, backward, optimizer step and zeroGrad, timed separately; prints one JSON
 * line with every step's times (for finding where the training step's time goes). With EMLAB_SPLIT_LORA=1
 * the steps train a LoRA r32 adapter on all seven projections instead (bench:peer's LoRA workload).
 *   EMLAB_NATIVE=build-torch2/Release/emlab.node npx tsx bench/sft-split.ts MODEL_DIR [THREADS] [STEPS]
 */
import { native } from "../src/native/addon.js";
import { handleOf } from "../src/tensor/internal.js";
import { loadModel } from "../src/models/load.js";
import { causalLmLoss } from "../src/nn/losses.js";
import { AdamW } from "../src/optim/adamw.js";
import { attachLoraWorkload } from "./lora-workload.js";
import { manualSeed, randint, setNumThreads, tidy } from "../src/index.js";

const [dir, threadArg, stepArg] = process.argv.slice(2);
if (!dir) {
  console.error("usage: npx tsx bench/sft-split.ts MODEL_DIR [THREADS] [STEPS]");
  process.exit(2);
}
setNumThreads(Number(threadArg ?? 2));
const model = loadModel(dir);
manualSeed(1);
const ids = randint(3, model.spec.vocabSize, [4, 256]);
const lora = process.env.EMLAB_SPLIT_LORA === "1";
const workload = lora ? attachLoraWorkload(model) : null;
const params = workload ? workload.adapter.parameters() : [...model.parameters.values()];
if (!workload) for (const p of params) p.requiresGrad_();
const optimizer = workload ? workload.optimizer : new AdamW(params, { lr: 1e-5 });
// Wall seconds and, as "<phase>Cpu", CPU seconds of the whole process (all threads): on a shared machine
// the CPU time is the steadier measure of the work a phase does.
const clock = () => ({ wall: process.hrtime.bigint(), cpu: process.cpuUsage() });
const round = (x: number) => Math.round(x * 1e3) / 1e3;
const record = (t: Record<string, number>, name: string, start: ReturnType<typeof clock>) => {
  const end = clock();
  t[name] = round(Number(end.wall - start.wall) / 1e9);
  t[`${name}Cpu`] = round((end.cpu.user - start.cpu.user + end.cpu.system - start.cpu.system) / 1e6);
};
const rows: Record<string, number>[] = [];
for (let step = 0; step < Number(stepArg ?? 3); step++) {
  const t: Record<string, number> = {};
  tidy(() => {
    let s = clock();
    const logits = model.decoder.forward(ids).logits!;
    record(t, "forward", s);
    s = clock();
    const loss = causalLmLoss(logits, ids);
    record(t, "loss", s);
    s = clock();
    loss.backward();
    record(t, "backward", s);
  });
  t.withGrad = params.filter((p) => native.hasGrad(handleOf(p))).length;
  let s = clock();
  optimizer.step();
  record(t, "step", s);
  s = clock();
  optimizer.zeroGrad();
  record(t, "zero", s);
  t.rssMb = Math.round(process.memoryUsage().rss / 2 ** 20);
  t.trims = native.hostTrimCount();
  rows.push(t);
  console.error(JSON.stringify(t));
}
console.log(JSON.stringify({ side: "emlab", lora, steps: rows }));
