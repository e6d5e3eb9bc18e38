/**
 * Analysis commands: direction, steer, ablate, efficiency, compare-norms, stability, significance,
 * gradients, monitor. Each declares its options once (help says which behaviour is the reference
 * study's and which is ours), parses them and calls library functions from src/analysis; outputs are
 * safetensors (directions), CSV (curves) or JSONL (events, gradients) files, and progress on stderr.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadPeftAdapters } from "../adapters/adapter-dirs.js";
import type { LoraAdapter } from "../adapters/lora.js";
import { savePeftAdapter } from "../adapters/peft.js";
import { appendOutputFile, writeOutputFile } from "../io/output.js";
import { meanDiffDirection, splitJudged } from "../analysis/directions.js";
import { readDocuments } from "../analysis/documents.js";
import {
  adapterEfficiency,
  adapterSignificance,
  compareAtEqualNorm,
  type NormSolution,
  type SignificancePoint,
  type SignificanceVector,
  significance,
  stability,
  steeringEfficiency,
  withAdapterNorm,
  withSteeringNorm,
} from "../analysis/experiments.js";
import { loadDirection, loadSteeringVector, readSteeringVectorFile } from "../analysis/files.js";
import { ablate, ablateLoraB, type DirectionRows, randomControl, steer, studySteeringControl, studyUnitRandomVectors } from "../analysis/interventions.js";
import { datasetLoss, type LossMask, lossSubset, type SubsetDraw } from "../analysis/loss.js";
import { adapterNorm, type RescaleMode } from "../analysis/rescale.js";
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
import { gradientsCommand, runGradients } from "./gradients.js";
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

function choice<T extends string>(flag: string, text: string | undefined, allowed: readonly T[], fallback: T): T {
  if (text === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(text)) throw new UsageError(`${flag}: expected ${allowed.join(" or ")}, got ${JSON.stringify(text)}`);
  return text as T;
}

/** The direction row choice of --form / --direction-layer (a 1-D direction needs neither). */
function directionRows(values: { form?: string; "direction-layer"?: string }, direction: Tensor, fallback: "shared" | "per-layer", formFlag = "--form"): DirectionRows {
  const row = parseNumber("--direction-layer", values["direction-layer"], { integer: true, min: 0 });
  // --direction-layer alone asks for the shared form; with per-layer rows it would be ignored: an error.
  const form = choice(formFlag, values.form, ["shared", "per-layer"] as const, row !== undefined ? "shared" : fallback);
  if (form === "per-layer" && row !== undefined) throw new UsageError("--direction-layer selects the shared form's row; it has no effect with per-layer rows");
  if (form === "per-layer" || direction.ndim !== 2) return "per-layer";
  if (row === undefined) throw new UsageError(`${formFlag} shared needs --direction-layer L (the row used at every layer; the study used 24), or give ${formFlag} per-layer`);
  if (row >= direction.size(0)) throw new UsageError(`--direction-layer: ${row} outside 0..${direction.size(0) - 1}`);
  return { shared: row };
}

const interventionOptions = {
  ...modelOptions,
  ...samplingOptions("600"),
  direction: { type: "string", value: "FILE", required: true, description: "direction file from emlab direction ([layers, d_model]), a steering vector (.safetensors) or the study's steering_vector.pt" },
  layers: { type: "string", value: "L,L|all", description: "layers whose output is changed (default: all; ablate with --direction-layer: that layer)" },
  prompt: { type: "string", value: "TEXT", description: "the question (required unless --lora-b-out)" },
  "prompt-format": { type: "string", value: "chat|study", default: "chat", description: "chat (ours): the chat template with a generation prompt; study (gen_with_steering): the raw text question + \"\\n\"" },
  samples: { type: "string", value: "K", default: "1", description: "samples per prompt" },
  form: { type: "string", value: "shared|per-layer", description: "shared (the study's l24_data_diff_vectors: the --direction-layer row at every chosen layer; ablate's default) or per-layer (ours: each layer's own row; steer's default)" },
  "direction-layer": { type: "string", value: "L", description: "the row used by the shared form (the study: 24); given alone it selects --form shared" },
  "random-control": { type: "string", value: "SEED", description: "replace the direction by a seeded random control of kind --control" },
  control: { type: "string", value: "same-norm|study", default: "same-norm", description: "same-norm (ours): Gaussian with the direction's norm; study: randn_like(d) * ||d|| (norm about sqrt(d_model) * ||d||)" },
  json: { type: "boolean", description: "print texts, output ids, layers, rows and seed as JSON" },
} as const;
const steerCommand = defineCommand({
  name: "steer",
  summary: "Generate with scale * direction added to the chosen layers' output at every position.",
  options: {
    ...interventionOptions,
    scale: { type: "string", value: "S", default: "8", description: "steering scale" },
  },
});
const ablateCommand = defineCommand({
  name: "ablate",
  summary: "Generate with the direction projected out of the chosen layers' output, or (--adapter, --lora-b-out) remove it from LoRA B.",
  notes: [
    "Activation ablation, two forms (docs/study.md): shared (the study's, the default): the --direction-layer row projected out at that layer (or at --layers); per-layer (ours): each layer's own row.",
    "LoRA-B ablation (--lora-b-out), the study's load_lora_with_vec_ablated by default: down_proj B of --layers only, one row (--direction-layer), B renormalised to its original Frobenius norm; ours via --lora-b-rows per-layer, --lora-b-modules down_proj,o_proj, --no-renormalise.",
  ],
  options: {
    ...interventionOptions,
    "lora-b-out": { type: "string", value: "DIR", description: "weight-space ablation: write the --adapter(s) with the direction removed from B here, as PEFT (several: DIR/<name>/)" },
    "lora-b-rows": { type: "string", value: "shared|per-layer", description: "LoRA-B: one row, --direction-layer (the study's, the default) or each layer's own (ours)" },
    "lora-b-modules": { type: "string", value: "down_proj[,o_proj]", default: "down_proj", description: "LoRA-B: module kinds changed (the study: down_proj; ours: also o_proj)" },
    "no-renormalise": { type: "boolean", description: "LoRA-B: keep B's reduced norm (ours; the study renormalises)" },
  },
});

function runIntervention(kind: "steer" | "ablate", argv: readonly string[]): number {
  const parsed = parseOrHelp<typeof steerCommand.options & typeof ablateCommand.options>((kind === "steer" ? steerCommand : ablateCommand) as never, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  return withModel(values, (model, tokenizer) => {
    let direction = loadDirection(required("--direction", values.direction), model.decoder.device);
    const seed = parseNumber("--random-control", values["random-control"], { integer: true, min: 0 });
    const controlKind = choice("--control", values.control, ["same-norm", "study"] as const, "same-norm");
    if (seed !== undefined) {
      const make = (v: Tensor, s: number) => (controlKind === "study" ? studySteeringControl(v, s) : randomControl(v, s));
      const random = keep(tidy(() => (direction.ndim === 2 ? cat(Array.from({ length: direction.size(0) }, (_, l) => make(direction.select(0, l), seed + l).unsqueeze(0)), 0) : make(direction, seed))));
      direction.dispose();
      direction = random;
    }
    try {
      if (kind === "ablate" && values["lora-b-out"] !== undefined) return ablateAdapters(values, model, direction);
      const rows = directionRows(values, direction, kind === "ablate" ? "shared" : "per-layer");
      // ablate's default layers: the direction layer (the study's sweep ablates at layer 24), else all.
      const directionLayer = parseNumber("--direction-layer", values["direction-layer"], { integer: true, min: 0 });
      const layers =
        values.layers === undefined && kind === "ablate" && directionLayer !== undefined
          ? layersFrom("--direction-layer", String(directionLayer), model)
          : layersFrom("--layers", values.layers, model);
      const sampling = samplingFrom(values, model);
      const handles = kind === "steer" ? steer(model.decoder, direction, layers, parseNumber("--scale", values.scale) ?? 8, rows) : ablate(model.decoder, direction, layers, rows);
      try {
        const question = required("--prompt", values.prompt);
        const format = choice("--prompt-format", values["prompt-format"], ["chat", "study"] as const, "chat");
        const ids = format === "study" ? tokenizer.encode(`${question}\n`) : tokenizer.encodeChat([{ role: "user", content: question }], { addGenerationPrompt: true });
        const result = generate(model.decoder, [ids], null, { ...sampling, samples: parseNumber("--samples", values.samples, { integer: true, min: 1 }) ?? 1, eosTokenIds: stopIds(model, tokenizer) });
        const texts = result.newIds.map((row) => tokenizer.decode(row, { skipSpecialTokens: true }));
        process.stdout.write(values.json ? `${JSON.stringify({ texts, output_ids: result.outputIds, layers, rows, seed: sampling.seed })}\n` : `${texts.join("\n---\n")}\n`);
      } finally {
        for (const h of handles) h.remove();
      }
      return 0;
    } finally {
      direction.dispose();
    }
  });
}

/** `ablate --lora-b-out DIR`: the study's LoRA-B ablation by default, our variants by flags; written as PEFT. */
function ablateAdapters(values: Record<string, string | boolean | undefined>, model: LoadedModel, direction: Tensor): number {
  const adapters = model.decoder.adapters.list;
  if (adapters.length === 0) throw new UsageError("--lora-b-out needs --adapter");
  const out = values["lora-b-out"] as string;
  const rows = directionRows({ form: values["lora-b-rows"] as string | undefined, "direction-layer": values["direction-layer"] as string | undefined }, direction, "shared", "--lora-b-rows");
  const modules = ((values["lora-b-modules"] as string | undefined) ?? "down_proj").split(",").map((m) => choice("--lora-b-modules", m.trim(), ["down_proj", "o_proj"] as const, "down_proj"));
  const changed = ablateLoraB(adapters, direction, {
    layers: values.layers === undefined ? undefined : layersFrom("--layers", values.layers as string, model),
    rows,
    modules,
    renormalise: values["no-renormalise"] !== true,
  });
  if (changed === 0) throw new UsageError(`no ${modules.join("/")} module of the adapter(s) is in the chosen layers: nothing to ablate`);
  const written = adapters.map((a) => {
    const dir = adapters.length === 1 ? out : join(out, a.name);
    savePeftAdapter(dir, a, { baseModel: model.dir });
    return dir;
  });
  process.stdout.write(`${JSON.stringify({ out: written, modules: changed, rows, renormalised: values["no-renormalise"] !== true })}\n`);
  return 0;
}

/** Loads the solution to analyse: a steering vector file or the --adapter solution; returns its tensors and a switch-off scope. */
function solution(values: { steering?: string; layer?: string; adapter?: string }, model: LoadedModel) {
  if (values.steering !== undefined) {
    const sv = loadSteeringVector(values.steering, model.decoder, { layer: parseNumber("--layer", values.layer, { integer: true, min: 0 }) });
    const handle = sv.attach(model.decoder);
    return { kind: "steering" as const, steering: sv, adapters: [] as LoraAdapter[], tensors: [sv.vector], off: <T>(fn: () => T) => sv.withoutSteering(fn), close: () => (handle.remove(), sv.dispose()) };
  }
  const adapters = [...model.decoder.adapters.list];
  if (adapters.length === 0) throw new UsageError("give --steering FILE or --adapter SPEC");
  return { kind: "adapter" as const, steering: null, adapters, tensors: adapters.flatMap((a) => a.parameters()), off: <T>(fn: () => T) => model.decoder.adapters.withoutAdapters(fn), close: () => {} };
}

const lossFlags = {
  data: { type: "string", value: "TRAIN.jsonl", required: true, description: "chat dataset the loss is measured on" },
  count: { type: "string", value: "N", default: "100", description: "examples in the seeded loss subset" },
  seed: { type: "string", value: "S", default: "42", description: "seed of the loss subset" },
  subset: { type: "string", value: "ours|study", default: "ours", description: "ours: a seeded permutation; study: Python's random.seed(S); random.sample(rows, N) (the same rows as CPython)" },
  "loss-mask": { type: "string", value: "assistant|study", default: "assistant", description: "assistant (ours): loss on assistant turns; study (stability/utils.py): chat + generation prompt + eos, masked up to the first \"\\n\" (Qwen: almost the whole chat)" },
} as const;
const rescaleFlag = {
  rescale: { type: "string", value: "ours|study", default: "ours", description: "LoRA norm semantics. ours: rank 1 = ||B|| over modules, every B scaled by one factor; study: norm = mean module ||BA||_F, rank 1 sets each ||B||, rank > 1 each ||BA||_F, to the target" },
} as const;
const analysisFlags = {
  steering: { type: "string", value: "FILE", description: "a steering vector (ours .safetensors or the study's steering_vector.pt; give this or --adapter)" },
  layer: { type: "string", value: "L", description: "the steering vector's layer (default: from the file)" },
  out: { type: "string", value: "FILE", required: true, description: "output file" },
  ...lossFlags,
} as const;
const solutionNote = ["Give --steering FILE or --adapter SPEC (the solution analysed; several adapters act as one)."];

function subsetFrom(values: { data?: string; count?: string; seed?: string; "loss-mask"?: string; subset?: string }, tokenizer: ChatTokenizer) {
  const mask = choice<LossMask>("--loss-mask", values["loss-mask"], ["assistant", "study"], "assistant");
  const draw = choice<SubsetDraw>("--subset", values.subset, ["ours", "study"], "ours");
  return lossSubset(tokenizer, readChatDataset(required("--data", values.data)).examples, {
    count: parseNumber("--count", values.count, { integer: true, min: 1 }) ?? 100,
    seed: parseNumber("--seed", values.seed, { integer: true }) ?? 42,
    mask,
    draw,
  });
}

const rescaleFrom = (values: { rescale?: string }) => choice<RescaleMode>("--rescale", values.rescale, ["ours", "study"], "ours");

const efficiencyCommand = defineCommand({
  name: "efficiency",
  summary: "Loss on a seeded subset against the solution's rescaled norm (alpha kept for vectors).",
  notes: solutionNote,
  options: { ...modelOptions, ...analysisFlags, ...rescaleFlag, scales: { type: "string", value: "S,S,...", description: "norm multipliers (default: 0..2 by 0.25 for a vector, 0..2 by 0.1 for an adapter)" } },
});

function runEfficiency(argv: readonly string[]): number {
  const parsed = parseOrHelp(efficiencyCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  return withModel(values, (model, tokenizer) => {
    const s = solution(values, model);
    try {
      const subset = subsetFrom(values, tokenizer);
      const scales = list("--scales", values.scales, s.kind === "steering" ? [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2] : Array.from({ length: 21 }, (_, i) => i / 10));
      const pad = tokenizer.padTokenId ?? 0;
      const points = s.steering ? steeringEfficiency(model, s.steering, subset, scales, pad) : adapterEfficiency(model, s.adapters, subset, scales, pad, rescaleFrom(values));
      writeCsv(out, ["scale", "norm", "loss"], points.map((p) => [p.scale, p.norm, p.loss]));
      process.stdout.write(`${JSON.stringify({ out, points })}\n`);
      return 0;
    } finally {
      s.close();
    }
  });
}

/** A solution of compare-norms: a vector file (by extension) or an adapter spec; attached only inside `at`. */
function normSolution(spec: string, model: LoadedModel, layer: number | undefined, mode: RescaleMode): NormSolution & { close(): void } {
  if (/\.(pt|pth|safetensors)$/i.test(spec)) {
    const sv = loadSteeringVector(spec, model.decoder, { layer });
    return {
      norm: tidy(() => sv.vector.norm().toNumber()),
      at: (target, fn) => {
        const handle = sv.attach(model.decoder);
        try {
          return withSteeringNorm(sv, target, fn);
        } finally {
          handle.remove();
        }
      },
      close: () => sv.dispose(),
    };
  }
  const adapters = loadPeftAdapters(spec, model);
  return {
    norm: adapterNorm(adapters, mode),
    at: (target, fn) => {
      for (const a of adapters) model.decoder.adapters.attach(a);
      try {
        return withAdapterNorm(adapters, target, mode, fn);
      } finally {
        for (const a of adapters) model.decoder.adapters.detach(a);
      }
    },
    close: () => adapters.forEach((a) => a.dispose()),
  };
}

const compareNormsCommand = defineCommand({
  name: "compare-norms",
  summary: "The study's equal-norm comparison: loss(narrow) - loss(general) with both rescaled to scales * the mean of their norms.",
  notes: ["A SOLUTION is a steering vector file (.pt / .safetensors) or an adapter SPEC (directory, comma list or run directory). CSV columns: norm,loss_narrow,loss_general,difference."],
  options: {
    model: modelOptions.model,
    dtype: modelOptions.dtype,
    device: modelOptions.device,
    narrow: { type: "string", value: "SOLUTION", required: true, description: "the narrow solution" },
    general: { type: "string", value: "SOLUTION", required: true, description: "the general solution" },
    layer: analysisFlags.layer,
    out: analysisFlags.out,
    ...lossFlags,
    ...rescaleFlag,
    scales: { type: "string", value: "S,S,...", default: "0.2,0.4,0.6,0.8,1,1.2,1.4,1.6,1.8,2", description: "multipliers of the mean norm" },
  },
});

function runCompareNorms(argv: readonly string[]): number {
  const parsed = parseOrHelp(compareNormsCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const narrowSpec = required("--narrow", values.narrow);
  const generalSpec = required("--general", values.general);
  return withModel(values, (model, tokenizer) => {
    const layer = parseNumber("--layer", values.layer, { integer: true, min: 0 });
    const mode = rescaleFrom(values);
    const narrow = normSolution(narrowSpec, model, layer, mode);
    let general: (NormSolution & { close(): void }) | null = null;
    try {
      general = normSolution(generalSpec, model, layer, mode);
      const subset = subsetFrom(values, tokenizer);
      const scales = list("--scales", values.scales, Array.from({ length: 10 }, (_, i) => (i + 1) / 5));
      const result = compareAtEqualNorm(model, narrow, general, subset, scales, { padId: tokenizer.padTokenId ?? 0, onProgress: progressReporter("compare-norms") });
      writeCsv(out, ["norm", "loss_narrow", "loss_general", "difference"], result.points.map((p) => [p.norm, p.narrow, p.general, p.difference]));
      process.stdout.write(`${JSON.stringify({ out, reference: result.reference, narrow_norm: narrow.norm, general_norm: general.norm, points: result.points })}\n`);
      return 0;
    } finally {
      narrow.close();
      general?.close();
    }
  });
}

const stabilityCommand = defineCommand({
  name: "stability",
  summary: "Orthogonal norm-preserving perturbations sqrt(1 - eps^2) x + eps y: (L_eps - L_0) / (L_base - L_0), mean and population (numpy, the study's) and sample std over seeds.",
  notes: solutionNote,
  options: {
    ...modelOptions,
    ...analysisFlags,
    eps: { type: "string", value: "E,E,...", default: "0.01,0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", description: "perturbation sizes" },
    seeds: { type: "string", value: "S,S,...", default: "42,43,44,45,46,47,48,49,50,51", description: "perturbation seeds (exp_set.sh's 10)" },
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
      const subset = subsetFrom(values, tokenizer);
      const pad = tokenizer.padTokenId ?? 0;
      const baseLoss = s.off(() => datasetLoss(model, subset, { padId: pad }));
      const result = stability(model, s.tensors, subset, {
        eps: list("--eps", values.eps, [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        seeds: list("--seeds", values.seeds, [42, 43, 44, 45, 46, 47, 48, 49, 50, 51]),
        baseLoss,
        padId: pad,
        onProgress: progressReporter("stability"),
      });
      writeCsv(
        out,
        ["eps", "mean_percent", "std_population_percent", "std_sample_percent", "losses"],
        result.points.map((p) => [p.eps, p.mean, p.stdPopulation, p.std, p.losses.join(" ")]),
      );
      process.stdout.write(`${JSON.stringify({ out, l0: result.l0, lBase: result.lBase })}\n`);
      return 0;
    } finally {
      s.close();
    }
  });
}

const significanceCommand = defineCommand({
  name: "significance",
  summary: "KL(base || steered), summed over the vocabulary and averaged over positions, on raw text for a grid of vector norms (times each vector's alpha), or for LoRA solutions.",
  notes: ["Give --vectors, --adapters or --random N. CSV columns: vector,norm,kl."],
  options: {
    ...modelOptions,
    texts: { type: "string", value: "FILE", required: true, description: ".jsonl (field text) or .txt (one document per line); each cut to 2000 characters and --max-tokens; an empty document is an error naming its line" },
    vectors: { type: "string", value: "A,B", description: "steering vector files (.safetensors or the study's steering_vector.pt): rescaled to norm n, times the file's own alpha (as the study)" },
    alpha: { type: "string", value: "A", description: "override every vector's alpha (random controls: --alpha, else the first file's, else 1)" },
    layer: { type: "string", value: "L", description: "layer whose output the vectors are added to (default: the first vector file's)" },
    norms: { type: "string", value: "N,N,...", description: "vector norms (default: 0..5 by 0.2)" },
    random: { type: "string", value: "N", description: "random control vectors (default: 5 with --vectors, else 0)" },
    "random-kind": { type: "string", value: "study|ours", default: "study", description: "study: torch.manual_seed(--random-seed), then N unit randn(d) draws; ours: a Gaussian with the first vector's norm per control, seeded --random-seed + i" },
    "random-seed": { type: "string", value: "S", default: "42", description: "seed of the random controls" },
    adapters: { type: "string", value: "A,B", description: "the LoRA form: KL(base || base + adapter) for each (an entry may be a run directory); norm = mean module ||BA||_F" },
    "include-pads": { type: "boolean", description: "average over padded positions too (the study's compute_kl_from_logits does; ours excludes them)" },
    "batch-size": { type: "string", value: "N", default: "2", description: "documents per forward pass (the study: 2)" },
    "max-tokens": { type: "string", value: "N", default: "512", description: "tokens per document" },
    out: { type: "string", value: "FILE.csv", required: true, description: "output: vector, norm, kl" },
  },
});

function runSignificance(argv: readonly string[]): number {
  const parsed = parseOrHelp(significanceCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const documents = readDocuments(required("--texts", values.texts));
  const files = (values.vectors ?? "").split(",").map((f) => f.trim()).filter(Boolean);
  const adapterSpecs = (values.adapters ?? "").split(",").map((f) => f.trim()).filter(Boolean);
  const randomCount = parseNumber("--random", values.random, { integer: true, min: 0 }) ?? (files.length > 0 ? 5 : 0);
  const randomKind = choice("--random-kind", values["random-kind"], ["study", "ours"] as const, "study");
  const randomSeed = parseNumber("--random-seed", values["random-seed"], { integer: true, min: 0 }) ?? 42;
  const alphaOverride = parseNumber("--alpha", values.alpha);
  if (files.length === 0 && adapterSpecs.length === 0 && randomCount === 0) throw new UsageError("give --vectors, --adapters or --random N");
  const options = {
    includePads: values["include-pads"],
    batchSize: parseNumber("--batch-size", values["batch-size"], { integer: true, min: 1 }) ?? 2,
    maxTokens: parseNumber("--max-tokens", values["max-tokens"], { integer: true, min: 1 }) ?? 512,
  };
  return withModel(values, (model, tokenizer) => {
    const vectors: (SignificanceVector & { alpha: number })[] = [];
    const solutions: { label: string; adapters: LoraAdapter[] }[] = [];
    let fileLayer: number | null = null;
    try {
      for (const file of files) {
        const read = readSteeringVectorFile(file);
        if (read.vector.size(0) !== model.spec.hiddenSize) {
          read.vector.dispose();
          throw new UsageError(`${file}: the vector has ${read.vector.size(0)} entries, the model's hidden size is ${model.spec.hiddenSize}`);
        }
        fileLayer ??= read.layer;
        vectors.push({ label: file, vector: read.vector, alpha: alphaOverride ?? read.alpha ?? 1 });
      }
      const layer = parseNumber("--layer", values.layer, { integer: true, min: 0 }) ?? fileLayer ?? undefined;
      if ((vectors.length > 0 || randomCount > 0) && layer === undefined) throw new UsageError("--layer is required (no vector file gives one)");
      if (layer !== undefined && layer >= model.spec.layers.length) throw new UsageError(`--layer: ${layer} outside 0..${model.spec.layers.length - 1}`);
      const randomAlpha = alphaOverride ?? vectors[0]?.alpha ?? 1;
      const controls =
        randomKind === "study"
          ? studyUnitRandomVectors(model.spec.hiddenSize, randomCount, randomSeed)
          : Array.from({ length: randomCount }, (_, i) => {
              const reference = vectors[0]?.vector;
              return keep(reference ? randomControl(reference, randomSeed + i) : tidy(() => randomControl(model.parameters.get("model.norm.weight")!.to("f32").mul(0).add(1), randomSeed + i)));
            });
      controls.forEach((vector, i) => vectors.push({ label: `random-${i}`, vector, alpha: randomAlpha }));
      for (const spec of adapterSpecs) solutions.push({ label: spec, adapters: loadPeftAdapters(spec, model) });
      const points: SignificancePoint[] = [];
      if (vectors.length > 0) {
        points.push(
          ...significance(model, tokenizer, documents, vectors, {
            ...options,
            layer: layer!,
            norms: list("--norms", values.norms, Array.from({ length: 26 }, (_, i) => i / 5)),
            onProgress: progressReporter("significance"),
          }),
        );
      }
      if (solutions.length > 0) points.push(...adapterSignificance(model, tokenizer, documents, solutions, { ...options, onProgress: progressReporter("significance (adapters)") }));
      writeCsv(out, ["vector", "norm", "kl"], points.map((p) => [p.label, p.norm, p.kl]));
      process.stdout.write(`${JSON.stringify({ out, documents: documents.length, vectors: vectors.map((v) => ({ label: v.label, alpha: v.alpha })), adapters: solutions.map((s) => s.label), layer })}\n`);
      return 0;
    } finally {
      for (const v of vectors) v.vector.dispose();
      for (const s of solutions) for (const a of s.adapters) a.dispose();
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
export const analysisSpecs: readonly CommandSpec[] = [directionCommand, steerCommand, ablateCommand, efficiencyCommand, compareNormsCommand, stabilityCommand, significanceCommand, gradientsCommand, monitorCommand] as never;

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
    case "compare-norms":
      return runCompareNorms(argv);
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
