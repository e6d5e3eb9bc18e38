/**
 * Analysis commands: direction, steer, ablate, efficiency, stability, significance, gradients,
 * monitor. Each parses flags and calls one library function from src/analysis; outputs are
 * safetensors (directions), CSV (curves) or JSONL (events, gradients) files, and progress on stderr.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
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
import { samplingFrom, samplingOptions, stopIds } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
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

/** `emlab direction --model DIR [--adapter DIR] --results JUDGED.csv --out direction.safetensors [--seed 0] [--batch-size 8]` */
function runDirection(argv: readonly string[]): number {
  const { values } = parseArgs({ args: [...argv], options: { ...modelOptions, results: { type: "string" }, out: { type: "string" }, seed: { type: "string" }, "batch-size": { type: "string" } }, strict: true });
  const rows = ResultsFile.open(required("--results", values.results), { mustExist: true }).rows;
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

/** `emlab steer|ablate --model DIR --direction FILE [--layers 24|all] [--scale 8] [--random-control SEED] --prompt TEXT --max-new-tokens N [...]` */
function runIntervention(kind: "steer" | "ablate", argv: readonly string[]): number {
  const { values } = parseArgs({
    args: [...argv],
    options: { ...modelOptions, ...samplingOptions, direction: { type: "string" }, layers: { type: "string" }, scale: { type: "string" }, prompt: { type: "string" }, samples: { type: "string" }, "random-control": { type: "string" }, "lora-b-out": { type: "string" }, json: { type: "boolean", default: false } },
    strict: true,
  });
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
      const handles = kind === "steer" ? steer(model.decoder, direction, layers, parseNumber("--scale", values.scale) ?? 8) : ablate(model.decoder, direction, layers);
      try {
        const ids = tokenizer.encodeChat([{ role: "user", content: required("--prompt", values.prompt) }], { addGenerationPrompt: true });
        const result = generate(model.decoder, [ids], null, { ...samplingFrom(values), samples: parseNumber("--samples", values.samples, { integer: true, min: 1 }) ?? 1, eosTokenIds: stopIds(model, tokenizer) });
        const texts = result.newIds.map((row) => tokenizer.decode(row, { skipSpecialTokens: true }));
        process.stdout.write(values.json ? `${JSON.stringify({ texts, output_ids: result.outputIds })}\n` : `${texts.join("\n---\n")}\n`);
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

const analysisFlags = { steering: { type: "string" }, layer: { type: "string" }, data: { type: "string" }, count: { type: "string" }, out: { type: "string" }, seed: { type: "string" } } as const;

/** `emlab efficiency --model DIR (--steering FILE | --adapter DIR) --data TRAIN.jsonl [--scales 0,0.1,...,2] --out FILE.csv` */
function runEfficiency(argv: readonly string[]): number {
  const { values } = parseArgs({ args: [...argv], options: { ...modelOptions, ...analysisFlags, scales: { type: "string" } }, strict: true });
  const out = required("--out", values.out);
  return withModel(values, (model, tokenizer) => {
    const s = solution(values, model);
    try {
      const subset = lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, { count: parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100, seed: parseNumber("--seed", values.seed, { integer: true }) ?? 42 });
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

/** `emlab stability --model DIR (--steering FILE | --adapter DIR) --data TRAIN.jsonl [--eps ...] [--seeds 42,...,51] --out FILE.csv` */
function runStability(argv: readonly string[]): number {
  const { values } = parseArgs({ args: [...argv], options: { ...modelOptions, ...analysisFlags, eps: { type: "string" }, seeds: { type: "string" } }, strict: true });
  const out = required("--out", values.out);
  return withModel(values, (model, tokenizer) => {
    const s = solution(values, model);
    try {
      const subset = lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, { count: parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100, seed: parseNumber("--seed", values.seed, { integer: true }) ?? 42 });
      const pad = tokenizer.padTokenId ?? 0;
      const baseLoss = s.off(() => datasetLoss(model, subset, { padId: pad }));
      const result = stability(model, s.tensors, subset, {
        eps: list("--eps", values.eps, [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        seeds: list("--seeds", values.seeds, [42, 43, 44, 45, 46, 47, 48, 49, 50, 51]),
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

/** `emlab significance --model DIR --vectors a.safetensors,b.safetensors --layer L --texts FILE [--norms 0,0.2,...,5] [--random 5] [--alpha A] [--include-pads] --out FILE.csv` */
function runSignificance(argv: readonly string[]): number {
  const { values } = parseArgs({
    args: [...argv],
    options: { ...modelOptions, vectors: { type: "string" }, layer: { type: "string" }, texts: { type: "string" }, norms: { type: "string" }, random: { type: "string" }, alpha: { type: "string" }, "include-pads": { type: "boolean", default: false }, "max-texts": { type: "string" }, out: { type: "string" } },
    strict: true,
  });
  const out = required("--out", values.out);
  const textFile = required("--texts", values.texts);
  const raw = readFileSync(textFile, "utf8");
  const texts = (textFile.endsWith(".jsonl") ? raw.split("\n").filter(Boolean).map((l) => String((JSON.parse(l) as { text: string }).text)) : raw.split(/\n\s*\n/))
    .filter((t) => t.length > 100)
    .map((t) => t.slice(0, 2000))
    .slice(0, parseNumber("--max-texts", values["max-texts"], { integer: true, min: 1 }) ?? 100);
  return withModel(values, (model, tokenizer) => {
    const layer = required("--layer", parseNumber("--layer", values.layer, { integer: true, min: 0 }));
    const vectors: { label: string; vector: Tensor }[] = [];
    try {
      for (const file of (values.vectors ?? "").split(",").filter(Boolean)) vectors.push({ label: file, vector: loadSteeringVector(file, model.decoder, { layer }).vector });
      const count = parseNumber("--random", values.random, { integer: true, min: 0 }) ?? 5;
      const reference = vectors[0]?.vector;
      const unitNorm = keep(tidy(() => model.parameters.get("model.norm.weight")!.to("f32").mul(0).add(1)));
      for (let i = 0; i < count; i++) vectors.push({ label: `random-${i}`, vector: keep(randomControl(reference ?? unitNorm, i)) });
      unitNorm.dispose();
      const points = significance(model, tokenizer, texts, vectors, {
        layer,
        alpha: parseNumber("--alpha", values.alpha) ?? 1,
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

/** `emlab gradients --model DIR --run RUN_DIR --data NARROW.jsonl [--directions FILE] --out FILE.jsonl` */
function runGradients(argv: readonly string[]): number {
  const { values } = parseArgs({ args: [...argv], options: { ...modelOptions, ...analysisFlags, run: { type: "string" }, directions: { type: "string" } }, strict: true });
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
      const subset = lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, { count: parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100, seed: 42 });
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

/** `emlab monitor --model DIR --direction FILE --layer L --threshold T --prompt TEXT [--ablate-on-alarm] [--max-new-tokens N]` */
function runMonitor(argv: readonly string[]): number {
  const { values } = parseArgs({
    args: [...argv],
    options: { ...modelOptions, ...samplingOptions, direction: { type: "string" }, layer: { type: "string" }, threshold: { type: "string" }, prompt: { type: "string" }, "ablate-on-alarm": { type: "boolean", default: false } },
    strict: true,
  });
  return withModel(values, (model, tokenizer) => {
    const layer = required("--layer", parseNumber("--layer", values.layer, { integer: true, min: 0 }));
    const direction = loadDirection(required("--direction", values.direction), model.decoder.device);
    try {
      const row = direction.ndim === 2 ? keep(tidy(() => direction.select(0, layer))) : direction;
      const ids = tokenizer.encodeChat([{ role: "user", content: required("--prompt", values.prompt) }], { addGenerationPrompt: true });
      const { result, ablated } = monitorGeneration(model.decoder, [ids], null, {
        ...samplingFrom(values),
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

export const analysisCommands = ["direction", "steer", "ablate", "efficiency", "stability", "significance", "gradients", "monitor"];
