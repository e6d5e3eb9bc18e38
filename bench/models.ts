/**
 * `npm run bench:models`: forward tokens/s and generation new-tokens/s on CPU (or --device cuda:0)
 * for the tiny fixture models and a randomly initialised Qwen2.5-0.5B-shaped model, printed with the
 * settings used. Not a test: it asserts nothing. On a GPU host, compare with
 * ../shared/bench/hf_baseline.py run on the same card in the same session.
 *   npx tsx bench/models.ts [--device cuda:0] [--dtype bf16] [--skip-large]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generate } from "../src/generate/generate.js";
import { type LoadedModel, loadModel } from "../src/models/load.js";
import { writeRandomModel } from "../src/models/random.js";
import { cuda, type Device, type DType, inferenceMode, numThreads, randint, tidy, torchVersion } from "../src/index.js";

const { values } = parseArgs({
  options: {
    device: { type: "string", default: "cpu" },
    dtype: { type: "string", default: "f32" },
    "skip-large": { type: "boolean", default: false },
  },
});
const device = values.device as Device;
const dtype = values.dtype as DType;

function sync(): void {
  if (device !== "cpu") cuda.synchronize(device);
}

function seconds(fn: () => void, repeats: number): number {
  fn(); // warm-up
  sync();
  const start = process.hrtime.bigint();
  for (let i = 0; i < repeats; i++) fn();
  sync();
  return Number(process.hrtime.bigint() - start) / 1e9 / repeats;
}

function forwardTokensPerSecond(model: LoadedModel, batch: number, length: number, repeats: number): number {
  const ids = randint(0, model.spec.vocabSize, [batch, length], { device });
  const time = seconds(() => inferenceMode(() => tidy(() => void model.decoder.forward(ids, { logits: "last" }))), repeats);
  ids.dispose();
  return (batch * length) / time;
}

function generationTokensPerSecond(model: LoadedModel, batch: number, promptLength: number, newTokens: number): number {
  const prompts = Array.from({ length: batch }, (_, b) =>
    Array.from({ length: promptLength }, (_, i) => (b * 131 + i * 17) % model.spec.vocabSize),
  );
  const time = seconds(
    () => inferenceMode(() => void generate(model.decoder, prompts, null, { maxNewTokens: newTokens, greedy: true })),
    2,
  );
  return (batch * newTokens) / time;
}

console.log(`emlab bench:models  libtorch ${torchVersion}, device ${device}, dtype ${dtype}, ${numThreads()} CPU threads`);
const rows: string[] = [];
const report = (name: string, setting: string, value: number, unit: string) => {
  const line = `${name.padEnd(26)} ${setting.padEnd(34)} ${value.toFixed(1).padStart(10)} ${unit}`;
  rows.push(line);
  console.log(line);
};

for (const family of ["qwen2", "qwen3", "llama", "gemma2", "gemma3"]) {
  const model = loadModel(`test/fixtures/hf/models/${family}`, { device, dtype });
  report(`tiny ${family}`, "forward batch 8 x 64", forwardTokensPerSecond(model, 8, 64, 20), "tokens/s");
  report(`tiny ${family}`, "generate batch 8, prompt 16, +32 new", generationTokensPerSecond(model, 8, 16, 32), "new tokens/s");
  model.dispose();
}

if (!values["skip-large"]) {
  const dir = mkdtempSync(join(tmpdir(), "emlab-bench-"));
  try {
    const params = writeRandomModel(dir, {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: 151936,
      hidden_size: 896,
      intermediate_size: 4864,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      max_position_embeddings: 32768,
    });
    const model = loadModel(dir, { device, dtype });
    const name = `Qwen2.5-0.5B shape (${(params / 1e6).toFixed(0)}M)`;
    report(name, "forward batch 1 x 128", forwardTokensPerSecond(model, 1, 128, 3), "tokens/s");
    report(name, "forward batch 4 x 128", forwardTokensPerSecond(model, 4, 128, 2), "tokens/s");
    report(name, "generate batch 1, prompt 32, +32 new", generationTokensPerSecond(model, 1, 32, 32), "new tokens/s");
    report(name, "generate batch 8, prompt 32, +32 new", generationTokensPerSecond(model, 8, 32, 32), "new tokens/s");
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (device === "cpu")
  console.log("(no GPU here: the HF generate comparison of mission.md needs a CUDA host; see bench/README or the closing notes)");
