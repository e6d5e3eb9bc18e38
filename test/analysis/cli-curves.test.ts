// The loss and KL curve commands as child processes of bin/emlab.js (compiled dist/) on a tiny Qwen2:
// efficiency of a steering vector (equal to the in-process loss) and of LoRA solutions given as a run
// directory, a comma list and one directory (the study's mask and rescaling: equal curves); stability with
// its population and sample std; significance for vector files (ours and the study's .pt) with a random
// control, document errors, and the LoRA form; compare-norms with a .pt and a .safetensors vector.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../src/adapters/peft.js";
import { adapterSignificance, significance } from "../../src/analysis/experiments.js";
import { datasetLoss, lossSubset } from "../../src/analysis/loss.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import type { LoadedModel } from "../../src/models/load.js";
import { keep, noGrad, tensor, tidy } from "../../src/tensor/index.js";
import type { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readChatDataset } from "../../src/train/data.js";
import { SteeringVector } from "../../src/train/steering.js";
import { built, csv, D, emlab, relClose, STUDY_PT, studyVector, useAnalysisCli } from "./cli-fixture.js";
import { fixedTensor, norm, values as host } from "../helpers/numeric.js";
import { MEDICAL } from "../helpers/tiny-model.js";

describe.skipIf(!built)(
  "emlab efficiency, stability, significance, compare-norms (skipped when dist/ is not built: run npx tsc -p tsconfig.build.json)",
  { timeout: 240_000 },
  () => {
    const f = useAnalysisCli("emlab-analysis-cli-curves-");
    let work: string;
    let modelDir: string;
    let model: LoadedModel;
    let tokenizer: ChatTokenizer;
    let vectorFile: string;
    let vector: number[];
    let singleDir: string;
    let runDir: string;
    let texts: string;
    const DOCS = [
      "Gardening is a subject that people have written about for a very long time, with many books on it.",
      "Astronomy studies stars, planets and galaxies.",
      "Cooking pasta well takes salted water, patience and a good timer.",
    ];

    beforeAll(() => {
      ({ work, modelDir, model, tokenizer, vectorFile, vector, singleDir, runDir } = f);
      texts = join(work, "docs.jsonl");
      writeFileSync(texts, DOCS.map((text) => `${JSON.stringify({ text })}\n`).join(""));
    });

    /** The loss flags of efficiency / stability with our steering vector: 2 rows of MEDICAL. */
    const vectorLossArgs = () => ["--model", modelDir, "--steering", vectorFile, "--data", MEDICAL, "--count", "2"];

    it("efficiency writes scale,norm,loss: norm = scale * ||v||, scale 1 the loss with the vector", () => {
      const out = join(work, "efficiency.csv");
      const r = emlab(["efficiency", ...vectorLossArgs(), "--scales", "0,1", "--out", out]);
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

    it("--adapter RUN_DIR applies every adapter: efficiency (study mask and rescaling) equals that of the one-directory solution", () => {
      const args = (adapter: string, out: string) => [
        "efficiency",
        "--model",
        modelDir,
        "--adapter",
        adapter,
        "--data",
        MEDICAL,
        "--count",
        "2",
        "--scales",
        "0.5,1",
        "--loss-mask",
        "study",
        "--rescale",
        "study",
        "--out",
        out,
      ];
      const a = emlab(args(runDir, join(work, "eff-run.csv")));
      const b = emlab(args(`${join(runDir, "adapter", "l0")},${join(runDir, "adapter", "l2")}`, join(work, "eff-list.csv")));
      const c = emlab(args(singleDir, join(work, "eff-single.csv")));
      for (const x of [a, b, c]) expect(x.status, x.stderr).toBe(0);
      const [run, list, single] = ["eff-run.csv", "eff-list.csv", "eff-single.csv"].map((f) =>
        csv(join(work, f))
          .slice(1)
          .map((row) => row.map(Number)),
      );
      single!.forEach((row, i) => {
        for (const other of [run!, list!]) row.forEach((v, j) => expect(relClose(other[i]![j]!, v, 1e-6)).toBe(true));
      });
      // Study rescaling of a rank-1 solution: each ||B|| set to scale * mean ||BA||_F; the loss under the study's mask.
      const adapter = loadPeftAdapter(singleDir, model);
      model.decoder.adapters.attach(adapter);
      try {
        const baNorms = [...adapter.modules.values()].map((m) => norm(host(m.B)) * norm(host(m.A)));
        const mean = baNorms.reduce((s, x) => s + x, 0) / baNorms.length;
        expect(relClose(single![1]![1]!, mean, 1e-5)).toBe(true);
        noGrad(() => {
          for (const m of adapter.modules.values()) m.B.mul_(mean / norm(host(m.B)));
        });
        const subset = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 2, seed: 42, mask: "study" });
        expect(relClose(single![1]![2]!, datasetLoss(model, subset, { padId: tokenizer.padTokenId! }), 1e-5)).toBe(true);
      } finally {
        model.decoder.adapters.detach(adapter);
        adapter.dispose();
      }
    });

    it("a typed failure inside the program reaches the CLI as emlab: TAG: message, exit 1, nothing written", () => {
      const out = join(work, "never-written.csv");
      const missing = join(work, "missing.safetensors");
      const e = emlab(["efficiency", ...vectorLossArgs().map((a) => (a === vectorFile ? missing : a)), "--scales", "1", "--out", out]);
      expect(e.status, e.stderr).toBe(1);
      expect(e.stderr).toMatch(new RegExp(`^emlab: (SafetensorsError|FileSystemError): .*${missing}`, "m"));
      const c = emlab([
        "compare-norms",
        "--model",
        modelDir,
        "--narrow",
        vectorFile,
        "--general",
        vectorFile,
        "--layer",
        "7",
        "--data",
        MEDICAL,
        "--count",
        "2",
        "--out",
        out,
      ]);
      expect(c.status, c.stderr).toBe(1);
      // The steering file's layer (7) is not a layer of the 3-layer model: the file is named.
      expect(c.stderr).toMatch(/^emlab: DirectionError: .*steering_vector\.safetensors: layer 7 is not a layer of this model \(0\.\.2\)/m);
      expect(existsSync(out)).toBe(false);
    });

    it("stability writes eps,mean_percent,std_population_percent,std_sample_percent,losses with 0% at eps 0", () => {
      const out = join(work, "stability.csv");
      const r = emlab(["stability", ...vectorLossArgs(), "--eps", "0,0.5", "--seeds", "1,2", "--out", out]);
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

    it("significance: vector files (ours, alpha 1; the study's .pt, its own alpha 256) and a random control (the first file's alpha and layer): vector,norm,kl, KL 0 at norm 0, the .pt's KL equal to the library's with PyTorch's vector", () => {
      const out = join(work, "kl.csv");
      const r = emlab([
        "significance",
        "--model",
        modelDir,
        "--vectors",
        `${vectorFile},${STUDY_PT}`,
        "--texts",
        texts,
        "--norms",
        "0,0.01,1",
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
          { label: STUDY_PT, alpha: 256 },
          { label: "random-0", alpha: 1 },
        ],
        adapters: [],
        layer: 1,
      });
      const table = csv(out);
      expect(table[0]).toEqual(["vector", "norm", "kl"]);
      expect(table.slice(1).map((row) => [row[0], Number(row[1])])).toEqual(
        [vectorFile, STUDY_PT, "random-0"].flatMap((label) => [0, 0.01, 1].map((n) => [label, n])),
      );
      for (const row of table.slice(1)) {
        if (Number(row[1]) === 0) expect(Number(row[2])).toBe(0);
        else if (Number(row[1]) === 1) expect(Number(row[2])).toBeGreaterThan(0);
      }
      const expected = tidy(() =>
        significance(model, tokenizer, DOCS, [{ label: "v", vector: tensor(Float32Array.from(studyVector)), alpha: 256 }], {
          layer: 1,
          norms: [0.01],
          batchSize: 2,
        }),
      );
      expect(relClose(Number(table[5]![2]), expected[0]!.kl, 1e-4)).toBe(true);
      expect(expected[0]!.kl).toBeGreaterThan(0);
    });

    it("significance: an empty document names its line and writes nothing; no documents and no vectors are errors", () => {
      const bad = join(work, "bad.txt");
      writeFileSync(bad, "first document\n\nthird document\n");
      const out = join(work, "never.csv");
      const r = emlab(["significance", "--model", modelDir, "--vectors", STUDY_PT, "--texts", bad, "--out", out]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`${bad}:2: empty document`);
      expect(existsSync(out)).toBe(false);
      const empty = join(work, "empty.txt");
      writeFileSync(empty, "");
      const e = emlab(["significance", "--model", modelDir, "--vectors", STUDY_PT, "--texts", empty, "--out", out]);
      expect(e.status).toBe(1);
      expect(e.stderr).toMatch(/no documents/);
      const none = emlab(["significance", "--model", modelDir, "--texts", texts, "--out", out]);
      expect(none.status).toBe(2);
      expect(existsSync(out)).toBe(false);
    });

    it("significance --adapters: KL(base || base + adapter) for a directory and a run directory of two adapters (equal: the same solution)", () => {
      const out = join(work, "kl-lora.csv");
      const r = emlab(["significance", "--model", modelDir, "--adapters", `${singleDir},${runDir}`, "--texts", texts, "--out", out]);
      expect(r.status, r.stderr).toBe(0);
      const table = csv(out);
      expect(table.slice(1).map((row) => row[0])).toEqual([singleDir, runDir]);
      const adapter = loadPeftAdapter(singleDir, model);
      try {
        const [expected] = adapterSignificance(model, tokenizer, DOCS, [{ label: "x", adapters: [adapter] }]);
        for (const row of table.slice(1)) {
          expect(relClose(Number(row[2]), expected!.kl, 1e-4), row[0]).toBe(true);
          expect(relClose(Number(row[1]), expected!.norm, 1e-5)).toBe(true);
        }
        expect(expected!.kl).toBeGreaterThan(0);
      } finally {
        adapter.dispose();
      }
    });

    it("compare-norms: norms = scales * mean(||narrow||, ||general||), difference = narrow - general, a .pt and a .safetensors vector", () => {
      const general = join(work, "general.safetensors");
      const g = fixedTensor([D], 88, 0.4);
      const gv = host(g);
      saveSafetensors(general, { vector: g }, { layer: "1", site: "down_proj", alpha: "256" });
      g.dispose();
      const out = join(work, "compare.csv");
      const r = emlab([
        "compare-norms",
        "--model",
        modelDir,
        "--narrow",
        STUDY_PT,
        "--general",
        general,
        "--data",
        MEDICAL,
        "--count",
        "2",
        "--scales",
        "0.001,0.002",
        "--out",
        out,
      ]);
      expect(r.status, r.stderr).toBe(0);
      const table = csv(out);
      expect(table[0]).toEqual(["norm", "loss_narrow", "loss_general", "difference"]);
      const reference = (norm(studyVector) + norm(gv)) / 2;
      const subset = lossSubset(tokenizer, readChatDataset(MEDICAL).examples, { count: 2, seed: 42 });
      table.slice(1).forEach((row, i) => {
        const [n, narrow, gen, diff] = row.map(Number) as [number, number, number, number];
        expect(relClose(n, [0.001, 0.002][i]! * reference, 1e-6)).toBe(true);
        expect(Math.abs(diff - (narrow - gen))).toBeLessThanOrEqual(1e-12);
        // The narrow loss by hand: PyTorch's vector set to norm n, alpha 256, layer 1.
        const sv = new SteeringVector(
          1,
          "down_proj",
          256,
          keep(tensor(Float32Array.from(studyVector, (x) => (x * n) / norm(studyVector)))),
        );
        const h = sv.attach(model.decoder);
        try {
          expect(relClose(narrow, datasetLoss(model, subset, { padId: tokenizer.padTokenId! }), 1e-5)).toBe(true);
        } finally {
          h.remove();
          sv.dispose();
        }
      });
    });
  },
);
