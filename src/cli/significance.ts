/** `emlab significance`: parses options, runs significanceProgram (src/effect/analysis-programs.ts: vectors, random controls, adapters), writes CSV. */
import { Effect } from "effect";
import { readDocuments } from "../analysis/documents.js";
import { significanceProgram } from "../effect/analysis-programs.js";
import { parseNumber, required, UsageError } from "./args.js";
import { choice, list, runWithModel, writeCsv, writeOutputs } from "./analysis-options.js";
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

export function runSignificance(argv: readonly string[]): Promise<number> | number {
  const parsed = parseOrHelp(significanceCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const out = required("--out", values.out);
  const documents = readDocuments(required("--texts", values.texts));
  const names = (text: string | undefined) =>
    (text ?? "")
      .split(",")
      .map((f) => f.trim())
      .filter(Boolean);
  const vectors = names(values.vectors);
  const adapters = names(values.adapters);
  const randomCount = parseNumber("--random", values.random, { integer: true, min: 0 }) ?? (vectors.length > 0 ? 5 : 0);
  if (vectors.length === 0 && adapters.length === 0 && randomCount === 0) throw new UsageError("give --vectors, --adapters or --random N");
  const layer = parseNumber("--layer", values.layer, { integer: true, min: 0 });
  if (vectors.length === 0 && randomCount > 0 && layer === undefined)
    throw new UsageError("--layer is required (no vector file gives one)");
  const options = {
    documents,
    vectors,
    adapters,
    random: {
      count: randomCount,
      kind: choice("--random-kind", values["random-kind"], ["study", "ours"] as const, "study"),
      seed: parseNumber("--random-seed", values["random-seed"], { integer: true, min: 0 }) ?? 42,
    },
    layer,
    alpha: parseNumber("--alpha", values.alpha),
    norms: list(
      "--norms",
      values.norms,
      Array.from({ length: 26 }, (_, i) => i / 5),
    ),
    includePads: values["include-pads"],
    batchSize: parseNumber("--batch-size", values["batch-size"], { integer: true, min: 1 }) ?? 2,
    maxTokens: parseNumber("--max-tokens", values["max-tokens"], { integer: true, min: 1 }) ?? 512,
    onProgress: progressReporter("significance"),
  };
  const program = Effect.gen(function* () {
    const result = yield* significanceProgram(options);
    return yield* writeOutputs(() => {
      writeCsv(
        out,
        ["vector", "norm", "kl"],
        result.points.map((p) => [p.label, p.norm, p.kl]),
      );
      process.stdout.write(
        `${JSON.stringify({ out, documents: documents.length, vectors: result.vectors, adapters: result.adapters, layer: result.layer })}\n`,
      );
    });
  });
  return runWithModel(values, program);
}
