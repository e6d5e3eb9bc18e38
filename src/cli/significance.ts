/** `emlab significance`: parses options, loads vectors / adapters / controls, runs the KL analysis (src/analysis/experiments.ts), writes CSV. */
import { loadPeftAdapters } from "../adapters/adapter-dirs.js";
import type { LoraAdapter } from "../adapters/lora.js";
import { readDocuments } from "../analysis/documents.js";
import { adapterSignificance, type SignificancePoint, type SignificanceVector, significance } from "../analysis/experiments.js";
import { readSteeringVectorFile } from "../analysis/files.js";
import { significanceControls } from "../analysis/significance-controls.js";
import { parseNumber, required, UsageError } from "./args.js";
import { choice, list, withModel, writeCsv } from "./analysis-options.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions } from "./model-args.js";
import { defineCommand } from "./options.js";
import { progressReporter } from "./progress.js";

export const significanceCommand = defineCommand({
  name: "significance",
  summary:
    "KL(base || steered), summed over the vocabulary and averaged over positions, on raw text for a grid of vector norms (times each vector's alpha), or for LoRA solutions.",
  notes: ["Give --vectors, --adapters or --random N. CSV columns: vector,norm,kl."],
  options: {
    ...modelOptions,
    texts: {
      type: "string",
      value: "FILE",
      required: true,
      description:
        ".jsonl (field text) or .txt (one document per line); each cut to 2000 characters and --max-tokens; an empty document is an error naming its line",
    },
    vectors: {
      type: "string",
      value: "A,B",
      description:
        "steering vector files (.safetensors or the study's steering_vector.pt): rescaled to norm n, times the file's own alpha (as the study)",
    },
    alpha: {
      type: "string",
      value: "A",
      description: "override every vector's alpha (random controls: --alpha, else the first file's, else 1)",
    },
    layer: { type: "string", value: "L", description: "layer whose output the vectors are added to (default: the first vector file's)" },
    norms: { type: "string", value: "N,N,...", description: "vector norms (default: 0..5 by 0.2)" },
    random: { type: "string", value: "N", description: "random control vectors (default: 5 with --vectors, else 0)" },
    "random-kind": {
      type: "string",
      value: "study|ours",
      default: "study",
      description:
        "study: torch.manual_seed(--random-seed), then N unit randn(d) draws; ours: a Gaussian with the first vector's norm per control, seeded --random-seed + i",
    },
    "random-seed": { type: "string", value: "S", default: "42", description: "seed of the random controls" },
    adapters: {
      type: "string",
      value: "A,B",
      description: "the LoRA form: KL(base || base + adapter) for each (an entry may be a run directory); norm = mean module ||BA||_F",
    },
    "include-pads": {
      type: "boolean",
      description: "average over padded positions too (the study's compute_kl_from_logits does; ours excludes them)",
    },
    "batch-size": { type: "string", value: "N", default: "2", description: "documents per forward pass (the study: 2)" },
    "max-tokens": { type: "string", value: "N", default: "512", description: "tokens per document" },
    out: { type: "string", value: "FILE.csv", required: true, description: "output: vector, norm, kl" },
  },
});

export function runSignificance(argv: readonly string[]): number {
  const parsed = parseOrHelp(significanceCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const documents = readDocuments(required("--texts", values.texts));
  const files = (values.vectors ?? "")
    .split(",")
    .map((f) => f.trim())
    .filter(Boolean);
  const adapterSpecs = (values.adapters ?? "")
    .split(",")
    .map((f) => f.trim())
    .filter(Boolean);
  const randomCount = parseNumber("--random", values.random, { integer: true, min: 0 }) ?? (files.length > 0 ? 5 : 0);
  const randomKind = choice("--random-kind", values["random-kind"], ["study", "ours"] as const, "study");
  const randomSeed = parseNumber("--random-seed", values["random-seed"], { integer: true, min: 0 }) ?? 42;
  const alphaOverride = parseNumber("--alpha", values.alpha);
  if (files.length === 0 && adapterSpecs.length === 0 && randomCount === 0)
    throw new UsageError("give --vectors, --adapters or --random N");
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
          throw new UsageError(
            `${file}: the vector has ${read.vector.size(0)} entries, the model's hidden size is ${model.spec.hiddenSize}`,
          );
        }
        fileLayer ??= read.layer;
        vectors.push({ label: file, vector: read.vector, alpha: alphaOverride ?? read.alpha ?? 1 });
      }
      const layer = parseNumber("--layer", values.layer, { integer: true, min: 0 }) ?? fileLayer ?? undefined;
      if ((vectors.length > 0 || randomCount > 0) && layer === undefined)
        throw new UsageError("--layer is required (no vector file gives one)");
      if (layer !== undefined && layer >= model.spec.layers.length)
        throw new UsageError(`--layer: ${layer} outside 0..${model.spec.layers.length - 1}`);
      const randomAlpha = alphaOverride ?? vectors[0]?.alpha ?? 1;
      const controls = significanceControls(model, randomCount, randomKind, randomSeed, vectors[0]?.vector);
      controls.forEach((vector, i) => vectors.push({ label: `random-${i}`, vector, alpha: randomAlpha }));
      for (const spec of adapterSpecs) solutions.push({ label: spec, adapters: loadPeftAdapters(spec, model) });
      const points: SignificancePoint[] = [];
      if (vectors.length > 0) {
        points.push(
          ...significance(model, tokenizer, documents, vectors, {
            ...options,
            layer: layer!,
            norms: list(
              "--norms",
              values.norms,
              Array.from({ length: 26 }, (_, i) => i / 5),
            ),
            onProgress: progressReporter("significance"),
          }),
        );
      }
      if (solutions.length > 0)
        points.push(
          ...adapterSignificance(model, tokenizer, documents, solutions, {
            ...options,
            onProgress: progressReporter("significance (adapters)"),
          }),
        );
      writeCsv(
        out,
        ["vector", "norm", "kl"],
        points.map((p) => [p.label, p.norm, p.kl]),
      );
      process.stdout.write(
        `${JSON.stringify({ out, documents: documents.length, vectors: vectors.map((v) => ({ label: v.label, alpha: v.alpha })), adapters: solutions.map((s) => s.label), layer })}\n`,
      );
      return 0;
    } finally {
      for (const v of vectors) v.vector.dispose();
      for (const s of solutions) for (const a of s.adapters) a.dispose();
    }
  });
}
