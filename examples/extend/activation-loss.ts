/**
 * A custom activation loss: LoRA fine-tuning with an extra term that penalises the residual stream's
 * component along a direction at one layer (e.g. a misalignment direction you want training to avoid).
 * The term declares its hook point; the trainer captures it on every forward, from step 0, also under
 * gradient checkpointing. Usage: npx tsx examples/extend/activation-loss.ts MODEL_DIR DATA.jsonl OUT_DIR
 */
import { LoraAdapter, type LossTerm, loadModel, resolveRunConfig, runTraining, type Tensor, tidy } from "../../src/index.js";

/** mean over tokens of (h . d_hat)^2 at `blocks.{layer}.resid_post`, real tokens only. */
export function projectionPenalty(layer: number, direction: Tensor, weight: number): LossTerm {
  const point = `blocks.${layer}.resid_post` as const;
  return {
    name: `proj_l${layer}`,
    weight,
    points: [point],
    compute: ({ activations, batch }) => {
      const h = activations.get(point)!; // [batch, pos, d_model], in the autograd graph
      const unit = direction.to(h.dtype).div(direction.norm().to(h.dtype));
      const projection = h.matmul(unit); // [batch, pos]
      const mask = batch.attentionMask.to(h.dtype);
      return projection.square().mul(mask).sum().div(mask.sum());
    },
  };
}

export function trainWithPenalty(
  modelDir: string,
  dataFile: string,
  outputDir: string,
  options: { steps?: number; checkpointing?: boolean } = {},
) {
  const model = loadModel(modelDir);
  const adapter = LoraAdapter.create(model.spec, { r: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "down_proj"] }, { initB: "zeros" });
  const layer = model.spec.layers.length - 1;
  // A fixed direction for the example; in a study, the one `emlab direction` wrote (loadDirection).
  const direction = tidy(() => model.parameters.get("model.norm.weight")!.mul(0).add(1));
  const perStep: number[] = [];
  try {
    const config = resolveRunConfig(
      {
        model: modelDir,
        output_dir: outputDir,
        method: "lora",
        lora: { r: 4, alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] },
        data: { train: dataFile, eval_fraction: 0, max_length: 128 },
        training: {
          max_steps: options.steps ?? 3,
          batch_size: 2,
          gradient_accumulation: 1,
          lr: 1e-3,
          warmup_steps: 0,
          gradient_checkpointing: options.checkpointing ?? false,
        },
      },
      "activation-loss example",
    );
    const result = runTraining(config, {
      model: { model, adapters: [adapter] },
      lossTerms: [projectionPenalty(layer, direction, 0.1)],
      callbacks: { afterStep: (m) => perStep.push((m as { terms?: Record<string, number> }).terms?.[`proj_l${layer}`] ?? Number.NaN) },
    });
    return { ...result, penaltyPerStep: perStep };
  } finally {
    direction.dispose();
    adapter.dispose();
    model.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [modelDir, dataFile, outputDir] = process.argv.slice(2);
  if (!modelDir || !dataFile || !outputDir) {
    console.error("usage: npx tsx examples/extend/activation-loss.ts MODEL_DIR DATA.jsonl OUT_DIR");
    process.exit(2);
  }
  console.log(JSON.stringify(trainWithPenalty(modelDir, dataFile, outputDir)));
}
