/**
 * Analysis commands: direction, steer, ablate, efficiency, stability, significance, gradients,
 * monitor. Each parses flags and calls one library function from src/analysis; outputs are
 * safetensors (directions), CSV (curves) or JSONL (events, gradients) files, and progress on stderr.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { savePeftAdapter } from "../adapters/peft.js";
import { appendOutputFile, writeOutputFile } from "../io/output.js";
import { meanDiffDirection, splitJudged } from "../analysis/directions.js";
import { adapterEfficiency, significance, stability, steeringEfficiency } from "../analysis/experiments.js";
import { loadDirection, loadSteeringVector } from "../analysis/files.js";
import { checkpointTrajectory, cosine, gradientNorms, lossGradient, pca } from "../analysis/gradients.js";
import { ablate, ablateLoraB, randomControl, steer } from "../analysis/interventions.js";
import { datasetLoss, lossSubset } from "../analysis/loss.js";
import { monitorGeneration } from "../analysis/monitor.js";
import { formatCsvRow } from "../eval/csv.js";
import { ResultsFile } from "../eval/results.js";
import { generate } from "../generate/generate.js";
import { saveSafetensors } from "../io/safetensors.js";
import type { LoadedModel } from "../models/load.js";
import { cat, keep, noGrad, type Tensor, tidy } from "../tensor/index.js";
import { SteeringVector } from "../train/steering.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { readChatDataset } from "../train/data.js";
import { parseNumber, required, UsageError } from "./args.js";
import { parseOrHelp, samplingFrom, samplingOptions, stopIds } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
import { type CommandSpec, defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

const list = (flag: string, text: string | undefined, fallback: number[]): number[] =>
  text === undefined ? fallback : text.split(",").map((v) => required(flag, parseNumber(flag, v.trim())));

function layersFrom(flag: string, text: string | undefined, model: LoadedModel): number[] {
  if (text === undefined || text === "all") return model.spec.layers.map((_, i) => i);
  const layers = list(flag, text, []);
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= model.spec.layers.length) throw new UsageError(`${flag}: layer ${l} outside 0..${model.spec.layers.length - 1}`);
  return layers;
}

function writeCsv(file: string, header: string[], rows: (string | number)[][]): void {
  writeOutputFile(file, formatCsvRow(header) + rows.map((r) => formatCsvRow(r)).join(""));
}

function withModel<T>(values: Record<string, unknown>, fn: (model: LoadedModel, tokenizer: ChatTokenizer) => T): T {
  const model = openModel(values as never);
  try {
    return fn(model, ChatTokenizer.fromDir(model.dir));
  } finally {
    model.dispose();
  }
}

const directionCommand = defineCommand({
  name: "direction",
  summary: "Mean-difference misalignment direction per layer (misaligned minus aligned answers' activations).",
  options: {
    ...modelOptions,
    results: { type: "string", value: "JUDGED.csv", required: true, description: "judged results (aligned and coherent columns)" },
    out: { type: "string", value: "FILE.safetensors", required: true, description: "output: direction [layers, d_model] and both means" },
    seed: { type: "string", value: "S", default: "0", description: "seed of the aligned subsample" },
    "batch-size": { type: "string", value: "N", default: "8", description: "answers per forward pass" },
  },
});

function runDirection(argv: readonly string[]): number {
  const parsed = parseOrHelp(directionCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const rows = ResultsFile.read(required("--results", values.results)).rows;
  const out = required("--out", values.out);
  const { misaligned, aligned } = splitJudged(rows, { seed: parseNumber("--seed", values.seed, { integer: true }) ?? 0 });
  return withModel(values, (model, tokenizer) => {
    const result = meanDiffDirection(model, tokenizer, misaligned, aligned, {
      batchSize: parseNumber("--batch-size", values["batch-size"], { integer: true, min: 1 }),
      onBatch: progressReporter("activations"),
    });
    try {
      saveSafetensors(out, { direction: result.direction, misaligned_mean: result.misalignedMean, aligned_mean: result.alignedMean }, {
        misaligned: String(result.counts.misaligned),
        aligned: String(result.counts.aligned),
        source: values.results!,
      });
      process.stdout.write(`${JSON.stringify({ out, ...result.counts, layers: model.spec.layers.length })}\n`);
    } finally {
      result.direction.dispose();
      result.misalignedMean.dispose();
      result.alignedMean.dispose();
    }
    return 0;
  });
}

const interventionOptions = {
  ...modelOptions,
  ...samplingOptions("600"),
  direction: { type: "string", value: "FILE", required: true, description: "direction file from emlab direction ([layers, d_model] or [d_model])" },
  layers: { type: "string", value: "L,L|all", default: "all", description: "layers whose output is changed" },
  prompt: { type: "string", value: "TEXT", description: "a user message, encoded with the chat template (required unless --lora-b-out)" },
  samples: { type: "string", value: "K", default: "1", description: "samples per prompt" },
  "random-control": { type: "string", value: "SEED", description: "use a same-norm random direction instead (a control)" },
  json: { type: "boolean", description: "print texts and output ids as JSON" },
} as const;
const steerCommand = defineCommand({
  name: "steer",
  summary: "Generate with scale * direction added to the chosen layers' output at every position.",
  options: { ...interventionOptions, scale: { type: "string", value: "S", default: "8", description: "steering scale" } },
});
const ablateCommand = defineCommand({
  name: "ablate",
  summary: "Generate with the direction projected out of the chosen layers' output, or (--adapter, --lora-b-out) remove it from LoRA B.",
  options: { ...interventionOptions, "lora-b-out": { type: "string", value: "DIR", description: "weight-space ablation: write the --adapter with d_hat removed from B here" } },
});

function runIntervention(kind: "steer" | "ablate", argv: readonly string[]): number {
  const parsed = parseOrHelp<typeof steerCommand.options & typeof ablateCommand.options>((kind === "steer" ? steerCommand : ablateCommand) as never, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const scale = parseNumber("--scale", values.scale);
  return withModel(values, (model, tokenizer) => {
    let direction = loadDirection(required("--direction", values.direction), model.decoder.device);
    const control = parseNumber("--random-control", values["random-control"], { integer: true, min: 0 });
    if (control !== undefined) {
      const random = keep(tidy(() => (direction.ndim === 2 ? directionRows(direction, control) : randomControl(direction, control))));
      direction.dispose();
      direction = random;
    }
    const layers = layersFrom("--layers", values.layers, model);
    try {
      if (kind === "ablate" && values["lora-b-out"] !== undefined) {
        const adapter = model.decoder.adapters.list[0];
        if (!adapter) throw new UsageError("--lora-b-out needs --adapter");
        const changed = ablateLoraB(adapter, direction, values.layers === undefined ? undefined : layers);
        savePeftAdapter(values["lora-b-out"], adapter, { baseModel: model.dir });
        process.stdout.write(`${JSON.stringify({ out: values["lora-b-out"], modules: changed })}\n`);
        return 0;
      }
      const sampling = samplingFrom(values, model);
      const handles = kind === "steer" ? steer(model.decoder, direction, layers, scale!) : ablate(model.decoder, direction, layers);
      try {
        const ids = tokenizer.encodeChat([{ role: "user", content: required("--prompt", values.prompt) }], { addGenerationPrompt: true });
        const result = generate(model.decoder, [ids], null, { ...sampling, samples: parseNumber("--samples", values.samples, { integer: true, min: 1 })!, eosTokenIds: stopIds(model, tokenizer) });
        const texts = result.newIds.map((row) => tokenizer.decode(row, { skipSpecialTokens: true }));
        process.stdout.write(values.json ? `${JSON.stringify({ texts, output_ids: result.outputIds, seed: sampling.seed })}\n` : `${texts.join("\n---\n")}\n`);
      } finally {
        for (const h of handles) h.remove();
      }
      return 0;
    } finally {
      direction.dispose();
    }
  });
}

/** Same-norm random rows for every layer of a direction matrix. */
function directionRows(direction: Tensor, seed: number): Tensor {
  return tidy(() => cat(Array.from({ length: direction.size(0) }, (_, l) => randomControl(direction.select(0, l), seed + l).unsqueeze(0)), 0));
}

/** Loads the solution to analyse: a steering vector file or the --adapter; returns its tensors and a switch-off scope. */
function solution(values: { steering?: string; layer?: string; adapter?: string }, model: LoadedModel) {
  if (values.steering !== undefined) {
    const sv = loadSteeringVector(values.steering, model.decoder, { layer: parseNumber("--layer", values.layer, { integer: true, min: 0 }) });
    const handle = sv.attach(model.decoder);
    return { kind: "steering" as const, steering: sv, adapter: null, tensors: [sv.vector], off: <T>(fn: () => T) => sv.withoutSteering(fn), close: () => (handle.remove(), sv.dispose()) };
  }
  const adapter = model.decoder.adapters.list[0];
  if (!adapter) throw new UsageError("give --steering FILE or --adapter DIR");
  return { kind: "adapter" as const, steering: null, adapter, tensors: adapter.parameters(), off: <T>(fn: () => T) => model.decoder.adapters.withoutAdapters(fn), close: () => {} };
}

const analysisFlags = {
  steering: { type: "string", value: "FILE", description: "a trained steering vector (give this or --adapter)" },
  layer: { type: "string", value: "L", description: "the steering vector's layer (default: from its metadata)" },
  data: { type: "string", value: "TRAIN.jsonl", required: true, description: "chat dataset the loss is measured on" },
  count: { type: "string", value: "N", default: "100", description: "examples in the seeded loss subset" },
  out: { type: "string", value: "FILE", required: true, description: "output file" },
  seed: { type: "string", value: "S", default: "42", description: "seed of the loss subset" },
} as const;
const solutionNote = ["Give --steering FILE or --adapter DIR (the solution analysed)."];

const efficiencyCommand = defineCommand({
  name: "efficiency",
  summary: "Loss on a seeded subset against the solution's rescaled norm (rank-1 B, or every module's ||BA||_F).",
  notes: solutionNote,
  options: { ...modelOptions, ...analysisFlags, scales: { type: "string", value: "S,S,...", description: "norm multipliers (default: 0..2 by 0.25 for a vector, 0..2 by 0.1 for an adapter)" } },
});

function runEfficiency(argv: readonly string[]): number {
  const parsed = parseOrHelp(efficiencyCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  return withModel(values, (model, tokenizer) => {
    const s = solution(values, model);
    try {
      const subset = lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, { count: parseNumber("--count", values.count, { integer: true, min: 1 })!, seed: parseNumber("--seed", values.seed, { integer: true })! });
      const scales = list("--scales", values.scales, s.kind === "steering" ? [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2] : Array.from({ length: 21 }, (_, i) => i / 10));
      const pad = tokenizer.padTokenId ?? 0;
      const points = s.steering ? steeringEfficiency(model, s.steering, subset, scales, pad) : adapterEfficiency(model, s.adapter!, subset, scales, pad);
      writeCsv(out, ["scale", "norm", "loss"], points.map((p) => [p.scale, p.norm, p.loss]));
      process.stdout.write(`${JSON.stringify({ out, points })}\n`);
      return 0;
    } finally {
      s.close();
    }
  });
}

const stabilityCommand = defineCommand({
  name: "stability",
  summary: "Orthogonal norm-preserving perturbations sqrt(1 - eps^2) x + eps y: (L_eps - L_0) / (L_base - L_0), mean and std over seeds.",
  notes: solutionNote,
  options: {
    ...modelOptions,
    ...analysisFlags,
    eps: { type: "string", value: "E,E,...", default: "0.01,0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", description: "perturbation sizes" },
    seeds: { type: "string", value: "S,S,...", default: "42,43,44,45,46,47,48,49,50,51", description: "perturbation seeds" },
  },
});

function runStability(argv: readonly string[]): number {
  const parsed = parseOrHelp(stabilityCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  return withModel(values, (model, tokenizer) => {
    const s = solution(values, model);
    try {
      const subset = lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, { count: parseNumber("--count", values.count, { integer: true, min: 1 })!, seed: parseNumber("--seed", values.seed, { integer: true })! });
      const pad = tokenizer.padTokenId ?? 0;
      const baseLoss = s.off(() => datasetLoss(model, subset, { padId: pad }));
      const result = stability(model, s.tensors, subset, {
        eps: list("--eps", values.eps, []),
        seeds: list("--seeds", values.seeds, []),
        baseLoss,
        padId: pad,
        onProgress: progressReporter("stability"),
      });
      writeCsv(out, ["eps", "mean_percent", "std_percent", "losses"], result.points.map((p) => [p.eps, p.mean, p.std, p.losses.join(" ")]));
      process.stdout.write(`${JSON.stringify({ out, l0: result.l0, lBase: result.lBase })}\n`);
      return 0;
    } finally {
      s.close();
    }
  });
}

const significanceCommand = defineCommand({
  name: "significance",
  summary: "KL(chat || steered) over a text corpus for a grid of vector norms, with same-norm random controls.",
  options: {
    ...modelOptions,
    vectors: { type: "string", value: "A,B", description: "steering vector files (trained vectors)" },
    layer: { type: "string", value: "L", required: true, description: "layer the vectors are added at" },
    texts: { type: "string", value: "FILE", required: true, description: "corpus: .jsonl with a text field, or plain text with blank-line separated documents (documents over 100 characters are used)" },
    norms: { type: "string", value: "N,N,...", description: "vector norms (default: 0..5 by 0.2)" },
    random: { type: "string", value: "N", default: "5", description: "random control vectors" },
    alpha: { type: "string", value: "A", default: "1", description: "steering alpha" },
    "include-pads": { type: "boolean", description: "average over padding positions too (the study's quirk)" },
    "max-texts": { type: "string", value: "N", default: "100", description: "documents used at most" },
    out: { type: "string", value: "FILE.csv", required: true, description: "output: vector, norm, kl" },
  },
});

function runSignificance(argv: readonly string[]): number {
  const parsed = parseOrHelp(significanceCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const textFile = required("--texts", values.texts);
  const raw = readFileSync(textFile, "utf8");
  const texts = (textFile.endsWith(".jsonl") ? raw.split("\n").filter(Boolean).map((l) => String((JSON.parse(l) as { text: string }).text)) : raw.split(/\n\s*\n/))
    .filter((t) => t.length > 100)
    .map((t) => t.slice(0, 2000))
    .slice(0, parseNumber("--max-texts", values["max-texts"], { integer: true, min: 1 })!);
  // Nothing to measure on: refuse before loading the model or writing the output.
  if (texts.length === 0) throw new UsageError(`--texts: ${textFile} has no document longer than 100 characters; nothing to measure KL on`);
  const layerIndex = required("--layer", parseNumber("--layer", values.layer, { integer: true, min: 0 }));
  return withModel(values, (model, tokenizer) => {
    const layer = layerIndex;
    const vectors: { label: string; vector: Tensor }[] = [];
    try {
      for (const file of (values.vectors ?? "").split(",").filter(Boolean)) vectors.push({ label: file, vector: loadSteeringVector(file, model.decoder, { layer }).vector });
      const count = parseNumber("--random", values.random, { integer: true, min: 0 })!;
      const reference = vectors[0]?.vector;
      const unitNorm = keep(tidy(() => model.parameters.get("model.norm.weight")!.to("f32").mul(0).add(1)));
      for (let i = 0; i < count; i++) vectors.push({ label: `random-${i}`, vector: keep(randomControl(reference ?? unitNorm, i)) });
      unitNorm.dispose();
      const points = significance(model, tokenizer, texts, vectors, {
        layer,
        alpha: parseNumber("--alpha", values.alpha)!,
        norms: list("--norms", values.norms, Array.from({ length: 26 }, (_, i) => i / 5)),
        includePads: values["include-pads"],
        onProgress: progressReporter("significance"),
      });
      writeCsv(out, ["vector", "norm", "kl"], points.map((p) => [p.label, p.norm, p.kl]));
      process.stdout.write(`${JSON.stringify({ out, texts: texts.length })}\n`);
      return 0;
    } finally {
      for (const v of vectors) v.vector.dispose();
    }
  });
}

const gradientsCommand = defineCommand({
  name: "gradients",
  summary: "Loss gradients at a steering run's checkpoints, their cosines to directions, and the trajectory's PCA.",
  options: {
    ...modelOptions,
    run: { type: "string", value: "RUN_DIR", required: true, description: "a steering-vector run directory (config.resolved.json, checkpoints/)" },
    data: analysisFlags.data,
    count: analysisFlags.count,
    out: { type: "string", value: "FILE.jsonl", required: true, description: "output (must not exist)" },
    directions: { type: "string", value: "FILE", description: "direction file to take cosines with" },
  },
});

function runGradients(argv: readonly string[]): number {
  const parsed = parseOrHelp(gradientsCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const run = required("--run", values.run);
  const out = required("--out", values.out);
  if (existsSync(out)) throw new UsageError(`${out} exists`);
  return withModel(values, (model, tokenizer) => {
    const config = JSON.parse(readFileSync(join(run, "config.resolved.json"), "utf8")) as { method: string; steering?: { layer: number; site: "down_proj" | "resid_post"; alpha: number } };
    if (config.method !== "steering") throw new UsageError("gradients currently follows steering-vector runs (use --run of a method: steering run)");
    const sv = SteeringVector.create(model.decoder, config.steering!.layer, { site: config.steering!.site, alpha: config.steering!.alpha });
    const handle = sv.attach(model.decoder);
    const directions = values.directions ? loadDirection(values.directions, model.decoder.device) : null;
    try {
      const subset = lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, { count: parseNumber("--count", values.count, { integer: true, min: 1 })!, seed: 42 });
      const trajectory = checkpointTrajectory(run);
      const progress = progressReporter("gradients");
      trajectory.steps.forEach((step, i) => {
        noGrad(() => tidy(() => void sv.vector.copy_(trajectory.points.select(0, i).to("f32"))));
        const [grad] = lossGradient(model, [sv.vector], subset, { padId: tokenizer.padTokenId ?? 0 });
        const row: Record<string, unknown> = { step, grad_norm: gradientNorms(new Map([["steering", grad!]])).total };
        if (directions) row.cosine = directions.ndim === 2 ? cosine(grad!, directions.select(0, sv.layer)) : cosine(grad!, directions);
        row.cosine_with_vector = cosine(grad!, sv.vector);
        grad!.dispose();
        appendOutputFile(out, `${JSON.stringify(row)}\n`);
        progress(i + 1, trajectory.steps.length);
      });
      const components = pca(trajectory.points, 3);
      appendOutputFile(out, `${JSON.stringify({ pca: components, steps: trajectory.steps })}\n`);
      trajectory.points.dispose();
      return 0;
    } finally {
      handle.remove();
      sv.dispose();
      directions?.dispose();
    }
  });
}

const monitorCommand = defineCommand({
  name: "monitor",
  summary: "Live per-token projection onto a direction while generating, with a threshold alarm and optional on-line ablation.",
  options: {
    ...modelOptions,
    ...samplingOptions("256"),
    direction: { type: "string", value: "FILE", required: true, description: "direction file" },
    layer: { type: "string", value: "L", required: true, description: "layer whose output is projected" },
    threshold: { type: "string", value: "T", required: true, description: "alarm when the projection exceeds T" },
    prompt: { type: "string", value: "TEXT", required: true, description: "a user message, encoded with the chat template" },
    "ablate-on-alarm": { type: "boolean", description: "project the direction out from the first alarm on (the printed projection is then the ablated one)" },
  },
});

function runMonitor(argv: readonly string[]): number {
  const parsed = parseOrHelp(monitorCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  return withModel(values, (model, tokenizer) => {
    const layer = required("--layer", parseNumber("--layer", values.layer, { integer: true, min: 0 }));
    const direction = loadDirection(required("--direction", values.direction), model.decoder.device);
    try {
      const row = direction.ndim === 2 ? keep(tidy(() => direction.select(0, layer))) : direction;
      const ids = tokenizer.encodeChat([{ role: "user", content: required("--prompt", values.prompt) }], { addGenerationPrompt: true });
      const { result, ablated } = monitorGeneration(model.decoder, [ids], null, {
        ...samplingFrom(values, model),
        eosTokenIds: stopIds(model, tokenizer),
        layer,
        direction: row,
        threshold: required("--threshold", parseNumber("--threshold", values.threshold)),
        ablateOnAlarm: values["ablate-on-alarm"],
        onEvent: (e) => process.stdout.write(`${JSON.stringify({ ...e, text: tokenizer.decode([e.token]) })}\n`),
      });
      if (row !== direction) row.dispose();
      process.stdout.write(`${JSON.stringify({ done: true, ablated, text: tokenizer.decode(result.newIds[0]!, { skipSpecialTokens: true }) })}\n`);
      return 0;
    } finally {
      direction.dispose();
    }
  });
}

/** The analysis commands, each with its option table (help and usage come from it). */
export const analysisSpecs: readonly CommandSpec[] = [directionCommand, steerCommand, ablateCommand, efficiencyCommand, stabilityCommand, significanceCommand, gradientsCommand, monitorCommand] as never;

export function runAnalysis(command: string, argv: readonly string[]): number {
  switch (command) {
    case "direction":
      return runDirection(argv);
    case "steer":
      return runIntervention("steer", argv);
    case "ablate":
      return runIntervention("ablate", argv);
    case "efficiency":
      return runEfficiency(argv);
    case "stability":
      return runStability(argv);
    case "significance":
      return runSignificance(argv);
    case "gradients":
      return runGradients(argv);
    case "monitor":
      return runMonitor(argv);
    default:
      throw new UsageError(`unknown analysis command ${command}`);
  }
}

export const analysisCommands = analysisSpecs.map((spec) => spec.name);
