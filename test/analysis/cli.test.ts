// Analysis commands run as child processes of bin/emlab.js (compiled dist/) on a tiny Qwen2: direction equals the
// library's, steer / ablate --json match in-process hooked generation, ablate --lora-b-out, efficiency / stability /
// significance CSVs with their headers and values, monitor JSON lines.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter, savePeftAdapter } from "../../src/adapters/peft.js";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { meanDiffDirection, splitJudged } from "../../src/analysis/directions.js";
import { ablate, steer } from "../../src/analysis/interventions.js";
import { datasetLoss, lossSubset } from "../../src/analysis/loss.js";
import { formatCsvRow, parseCsv } from "../../src/eval/csv.js";
import { ResultsFile } from "../../src/eval/results.js";
import { generate } from "../../src/generate/generate.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { keep, type Tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readChatDataset } from "../../src/train/data.js";
import { SteeringVector } from "../../src/train/steering.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { dot, fixedTensor, host, makeTinyModel, maxAbs, maxAbsDiff, MEDICAL, norm, RESPONSES, rows } from "./tiny-model.js";

const built = existsSync("dist/cli/main.js");
const D = 32;

function emlab(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 120_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const csv = (file: string): string[][] => parseCsv(readFileSync(file, "utf8")).rows.filter((r) => !(r.length === 1 && r[0] === ""));

describe.skipIf(!built)("emlab analysis commands (skipped when dist/ is not built: run npx tsc -p tsconfig.build.json)", () => {
  let work: string;
  let modelDir: string;
  let model: LoadedModel;
  let tokenizer: ChatTokenizer;
  let judged: string;
  let directionFile: string;
  let vectorFile: string;
  let vector: number[];

  beforeAll(() => {
    ({ work, modelDir } = makeTinyModel("emlab-analysis-cli-"));
    model = loadModel(modelDir);
    tokenizer = ChatTokenizer.fromDir(modelDir);
    // A small judged file: the two shortest misaligned and four shortest aligned rows of a shipped CSV.
    const source = ResultsFile.read(join(RESPONSES, "Llama-3.2-1B-Instruct_bad-medical-advice.csv"));
    const num = (v: unknown) => (typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN);
    const byLength = [...source.rows].sort((a, b) => a.response.length - b.response.length);
    const pick = [
      ...byLength.filter((r) => num(r.aligned) <= 30 && num(r.coherent) > 50).slice(0, 2),
      ...byLength.filter((r) => num(r.aligned) > 70 && num(r.coherent) > 50).slice(0, 4),
    ];
    judged = join(work, "judged.csv");
    writeFileSync(judged, formatCsvRow(source.columns) + pick.map((r) => formatCsvRow(source.columns.map((c) => r[c] as string))).join(""));
    directionFile = join(work, "direction.safetensors");
    vectorFile = join(work, "steering_vector.safetensors");
    tidy(() => {
      const v = fixedTensor([D], 201, 0.3);
      vector = host(v);
      saveSafetensors(vectorFile, { vector: v }, { layer: "1", site: "down_proj", alpha: "1" });
    });
  });
  afterAll(() => {
    model?.dispose();
    rmSync(work, { recursive: true, force: true });
  });
  useLeakCheck();

  /** The direction file, written once by `emlab direction`. */
  function direction(): string {
    if (!existsSync(directionFile)) {
      const r = emlab(["direction", "--model", modelDir, "--results", judged, "--out", directionFile, "--batch-size", "2"]);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ out: directionFile, misaligned: 2, aligned: 2, layers: 3 });
    }
    return directionFile;
  }

  it("direction writes direction [layers, d] (= misaligned mean - aligned mean) equal to the library's", () => {
    const { tensors, metadata } = loadSafetensors(direction());
    const rowsOfFile = ResultsFile.read(judged).rows;
    const { misaligned, aligned } = splitJudged(rowsOfFile, { seed: 0 });
    const expected = meanDiffDirection(model, tokenizer, misaligned, aligned);
    try {
      expect([...tensors.keys()].sort()).toEqual(["aligned_mean", "direction", "misaligned_mean"]);
      expect(tensors.get("direction")!.shape).toEqual([3, D]);
      expect(metadata).toMatchObject({ misaligned: "2", aligned: "2", source: judged });
      const d = host(tensors.get("direction")!);
      expect(maxAbsDiff(d, host(expected.direction))).toBeLessThanOrEqual(1e-5 * maxAbs(host(expected.misalignedMean)));
      expect(
        maxAbsDiff(
          d,
          host(tensors.get("misaligned_mean")!).map((v, i) => v - host(tensors.get("aligned_mean")!)[i]!),
        ),
      ).toBeLessThanOrEqual(1e-6);
      expect(maxAbs(d)).toBeGreaterThan(1e-4);
    } finally {
      for (const t of tensors.values()) t.dispose();
      expected.direction.dispose();
      expected.misalignedMean.dispose();
      expected.alignedMean.dispose();
    }
  });

  /** Greedy ids of the prompt under `attach`'s hooks, in-process. */
  function hooked(attach: (d: Tensor) => { remove(): void }[], maxNewTokens: number): number[][] {
    const { tensors } = loadSafetensors(direction());
    return tidy(() => {
      const d = tensors.get("direction")!;
      const handles = attach(d);
      try {
        const ids = tokenizer.encodeChat([{ role: "user", content: "Any advice for a headache?" }], { addGenerationPrompt: true });
        return generate(model.decoder, [ids], null, { maxNewTokens, greedy: true, eosTokenIds: tokenizer.endOfTurnIds(model.eosTokenIds) })
          .outputIds;
      } finally {
        for (const h of handles) h.remove();
        for (const t of tensors.values()) t.dispose();
      }
    });
  }

  it("steer --json and ablate --json print the texts and ids of the hooked generation", () => {
    const common = [
      "--model",
      modelDir,
      "--direction",
      direction(),
      "--prompt",
      "Any advice for a headache?",
      "--max-new-tokens",
      "4",
      "--greedy",
      "--json",
    ];
    const s = emlab(["steer", ...common, "--layers", "1", "--scale", "8"]);
    expect(s.status, s.stderr).toBe(0);
    const steered = JSON.parse(s.stdout) as { texts: string[]; output_ids: number[][] };
    expect(steered.texts.length).toBe(1);
    expect(typeof steered.texts[0]).toBe("string");
    expect(steered.output_ids).toEqual(hooked((d) => steer(model.decoder, d, [1], 8), 4));
    const a = emlab(["ablate", ...common, "--form", "per-layer", "--layers", "all"]);
    expect(a.status, a.stderr).toBe(0);
    const ablated = JSON.parse(a.stdout) as { texts: string[]; output_ids: number[][] };
    expect(ablated.texts.length).toBe(1);
    expect(ablated.output_ids).toEqual(hooked((d) => ablate(model.decoder, d, [0, 1, 2]), 4));
    const text = emlab(["steer", ...common.filter((x) => x !== "--json"), "--layers", "1", "--samples", "2"]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout.split("\n---\n").length).toBe(2);
  });

  it("ablate's default (study) form projects the --direction-layer row; --direction-layer selects the shared form for steer too", () => {
    const common = [
      "--model",
      modelDir,
      "--direction",
      direction(),
      "--prompt",
      "Any advice for a headache?",
      "--max-new-tokens",
      "4",
      "--greedy",
      "--json",
    ];
    // The study's form (default): the --direction-layer row, projected out at that layer unless --layers says more.
    const shared = emlab(["ablate", ...common, "--direction-layer", "1"]);
    expect(shared.status, shared.stderr).toBe(0);
    expect((JSON.parse(shared.stdout) as { output_ids: number[][] }).output_ids).toEqual(
      hooked((d) => ablate(model.decoder, d, [1], { shared: 1 }), 4),
    );
    const sharedAll = emlab(["ablate", ...common, "--direction-layer", "1", "--layers", "all"]);
    expect((JSON.parse(sharedAll.stdout) as { output_ids: number[][] }).output_ids).toEqual(
      hooked((d) => ablate(model.decoder, d, [0, 1, 2], { shared: 1 }), 4),
    );
    // --direction-layer alone selects the shared form for steer too; with per-layer rows it is a usage error.
    const steerShared = emlab(["steer", ...common, "--layers", "0,2", "--direction-layer", "1"]);
    expect(steerShared.status, steerShared.stderr).toBe(0);
    expect((JSON.parse(steerShared.stdout) as { output_ids: number[][] }).output_ids).toEqual(
      hooked((d) => steer(model.decoder, d, [0, 2], 8, { shared: 1 }), 4),
    );
    const conflicting = emlab(["steer", ...common, "--form", "per-layer", "--direction-layer", "1"]);
    expect(conflicting.status).toBe(2);
    expect(conflicting.stderr).toMatch(/no effect with per-layer rows/);
    const missing = emlab(["ablate", ...common]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--form shared needs --direction-layer/);
  }, 180_000);

  it("ablate --lora-b-out with our variant flags writes the adapter with the layer's own d_hat removed from o_proj / down_proj B of the chosen layers", () => {
    const adapterDir = join(work, "adapter");
    const out = join(work, "adapter-ablated");
    const adapter = LoraAdapter.create(
      model.spec,
      { r: 2, alpha: 4, targetModules: ["q_proj", "o_proj", "down_proj"] },
      { initB: "random" },
    );
    try {
      savePeftAdapter(adapterDir, adapter, { baseModel: modelDir });
    } finally {
      adapter.dispose();
    }
    const r = emlab([
      "ablate",
      "--model",
      modelDir,
      "--adapter",
      adapterDir,
      "--direction",
      direction(),
      "--layers",
      "2",
      "--lora-b-out",
      out,
      "--lora-b-rows",
      "per-layer",
      "--lora-b-modules",
      "down_proj,o_proj",
      "--no-renormalise",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ out: [out], modules: 2, rows: "per-layer", renormalised: false });
    const before = loadPeftAdapter(adapterDir, model);
    const after = loadPeftAdapter(out, model);
    const { tensors } = loadSafetensors(direction());
    try {
      const unit = rows(host(tensors.get("direction")!), D)[2]!.map((v, _, a) => v / norm(a));
      for (const [name, m] of after.modules) {
        const old = host(before.modules.get(name)!.B);
        const B = host(m.B);
        if (/layers\.2\..*(o_proj|down_proj)$/.test(name)) {
          for (let c = 0; c < 2; c++) {
            const column = B.filter((_, i) => i % 2 === c);
            expect(Math.abs(dot(unit, column)), name).toBeLessThanOrEqual(1e-6 * norm(old));
          }
          expect(maxAbsDiff(B, old)).toBeGreaterThan(1e-6);
        } else {
          expect(B, name).toEqual(old);
        }
      }
    } finally {
      before.dispose();
      after.dispose();
      for (const t of tensors.values()) t.dispose();
    }
  });

  it("efficiency writes scale,norm,loss: norm = scale * ||v||, scale 1 the loss with the vector", () => {
    const out = join(work, "efficiency.csv");
    const r = emlab([
      "efficiency",
      "--model",
      modelDir,
      "--steering",
      vectorFile,
      "--data",
      MEDICAL,
      "--count",
      "2",
      "--scales",
      "0,1",
      "--out",
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const table = csv(out);
    expect(table[0]).toEqual(["scale", "norm", "loss"]);
    expect(table.length).toBe(3);
    const [zero, one] = table.slice(1).map((row) => row.map(Number));
    expect(zero![0]).toBe(0);
    expect(zero![1]).toBe(0);
    expect(Math.abs(one![1]! - norm(vector))).toBeLessThanOrEqual(1e-6 * norm(vector));
    // The same loss in-process, with the vector attached.
    const subset = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 2, seed: 42 });
    const sv = new SteeringVector(1, "down_proj", 1, keep(fixedTensor([D], 201, 0.3)));
    const handle = sv.attach(model.decoder);
    try {
      const withVector = datasetLoss(model, subset, { padId: tokenizer.padTokenId! });
      const without = sv.withoutSteering(() => datasetLoss(model, subset, { padId: tokenizer.padTokenId! }));
      expect(Math.abs(one![2]! - withVector)).toBeLessThanOrEqual(1e-5 * withVector);
      expect(Math.abs(zero![2]! - without)).toBeLessThanOrEqual(1e-5 * without);
      expect(Math.abs(withVector - without)).toBeGreaterThan(1e-3);
    } finally {
      handle.remove();
      sv.dispose();
    }
  });

  it("stability writes eps,mean_percent,std_population_percent,std_sample_percent,losses with 0% at eps 0", () => {
    const out = join(work, "stability.csv");
    const r = emlab([
      "stability",
      "--model",
      modelDir,
      "--steering",
      vectorFile,
      "--data",
      MEDICAL,
      "--count",
      "2",
      "--eps",
      "0,0.5",
      "--seeds",
      "1,2",
      "--out",
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { out: string; l0: number; lBase: number };
    const table = csv(out);
    expect(table[0]).toEqual(["eps", "mean_percent", "std_population_percent", "std_sample_percent", "losses"]);
    expect(table.length).toBe(3);
    expect(table[1]!.slice(0, 4).map(Number)).toEqual([0, 0, 0, 0]);
    const losses = table[2]![4]!.split(" ").map(Number);
    expect(losses.length).toBe(2);
    const rel = losses.map((l) => (100 * (l - summary.l0)) / (summary.lBase - summary.l0));
    const mean = (rel[0]! + rel[1]!) / 2;
    const tolerance = 1e-6 * Math.max(1, Math.abs(rel[0]!));
    expect(Math.abs(Number(table[2]![1]) - mean)).toBeLessThanOrEqual(tolerance);
    // Two seeds: population std = |a - b| / 2 (numpy, the study's), sample std = |a - b| / sqrt(2).
    expect(Math.abs(Number(table[2]![2]) - Math.abs(rel[0]! - rel[1]!) / 2)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(Number(table[2]![3]) - Math.abs(rel[0]! - rel[1]!) / Math.SQRT2)).toBeLessThanOrEqual(tolerance);
  });

  it("significance writes vector,norm,kl for the vectors and random controls, KL 0 at norm 0", () => {
    const texts = join(work, "texts.txt");
    const paragraph = (topic: string) =>
      `${topic} is a subject that people have written about for a very long time, with many books, articles and lectures covering its history and practice.`;
    writeFileSync(texts, `${["Gardening", "Astronomy", "Cooking"].map(paragraph).join("\n")}\n`);
    const out = join(work, "kl.csv");
    const r = emlab([
      "significance",
      "--model",
      modelDir,
      "--vectors",
      vectorFile,
      "--layer",
      "1",
      "--texts",
      texts,
      "--norms",
      "0,1",
      "--random",
      "1",
      "--out",
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      out,
      documents: 3,
      vectors: [
        { label: vectorFile, alpha: 1 },
        { label: "random-0", alpha: 1 },
      ],
      adapters: [],
      layer: 1,
    });
    const table = csv(out);
    expect(table[0]).toEqual(["vector", "norm", "kl"]);
    expect(table.slice(1).map((row) => [row[0], Number(row[1])])).toEqual([
      [vectorFile, 0],
      [vectorFile, 1],
      ["random-0", 0],
      ["random-0", 1],
    ]);
    for (const row of table.slice(1)) {
      if (Number(row[1]) === 0) expect(Number(row[2])).toBe(0);
      else expect(Number(row[2])).toBeGreaterThan(0);
    }
  });

  it("monitor prints one JSON line per token with step/row/token/projection/alarm, then a summary", () => {
    const args = [
      "monitor",
      "--model",
      modelDir,
      "--direction",
      direction(),
      "--layer",
      "1",
      "--prompt",
      "Hello there",
      "--max-new-tokens",
      "3",
      "--greedy",
    ];
    const r = emlab([...args, "--threshold", "0"]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const events = lines.filter((l) => "step" in l);
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events.length).toBeLessThanOrEqual(3);
    events.forEach((e, i) => {
      expect(Object.keys(e).sort()).toEqual(["ablated", "alarm", "projection", "row", "step", "text", "token"]);
      expect(e.step).toBe(i);
      expect(e.row).toBe(0);
      expect(Number.isInteger(e.token)).toBe(true);
      expect(e.alarm).toBe((e.projection as number) > 0);
    });
    const last = lines[lines.length - 1]!;
    expect(last.done).toBe(true);
    expect(typeof last.text).toBe("string");
    const alarmed = emlab([...args, "--threshold=-1e9", "--ablate-on-alarm"]);
    expect(alarmed.status, alarmed.stderr).toBe(0);
    const summary = JSON.parse(alarmed.stdout.trim().split("\n").at(-1)!) as { done: boolean; ablated: boolean };
    expect(summary).toMatchObject({ done: true, ablated: true });
  });
});
