// Child process of the memory soak tests (run with `node --import tsx`): writes a small random model with a
// large vocabulary, then evaluates datasetLoss under inference mode on batches of varying length (each batch a
// fresh logits size, the pattern that fragmented the heap) and prints one JSON line per batch with the RSS.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { datasetLoss } from "../../src/analysis/loss.js";
import { loadModel } from "../../src/models/load.js";
import { writeRandomModel } from "../../src/models/random.js";
import { liveTensorCount } from "../../src/tensor/index.js";

const batches = Number(process.argv[2] ?? 24);
const dir = mkdtempSync(join(tmpdir(), "emlab-soak-"));
try {
  writeRandomModel(join(dir, "model"), {
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    vocab_size: 50000,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: true,
  } as never);
  const model = loadModel(join(dir, "model"));
  const example = (length: number, seed: number) => ({
    ids: Array.from({ length }, (_, j) => (seed * 7919 + j * 31) % 50000),
    labels: Array.from({ length }, (_, j) => (seed * 104729 + j * 17) % 50000),
  });
  for (let b = 0; b < batches; b++) {
    // Lengths cycle through 17 different values between 40 and 232 tokens.
    const length = 40 + ((b * 7) % 17) * 12;
    const loss = datasetLoss(
      model,
      [0, 1, 2, 3].map((i) => example(length - i, b * 4 + i)),
      { batchSize: 4 },
    );
    process.stdout.write(`${JSON.stringify({ batch: b, length, loss, rss: process.memoryUsage().rss, live: liveTensorCount() })}\n`);
  }
  model.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
