// The study's options through the analysis commands (bin/emlab.js on dist/), on a tiny Qwen2: significance
// with the study's steering_vector.pt (its own layer and alpha), document errors, the LoRA form; --adapter as a
// run directory of several adapters (acting as one adapter over the same layers); the study's LoRA-B ablation
// written as PEFT directories; compare-norms; steer's study prompt and control; --help names both behaviours.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { loadPeftAdapter, savePeftAdapter } from "../../src/adapters/peft.js";
import { adapterSignificance, significance } from "../../src/analysis/experiments.js";
import { steer, studySteeringControl } from "../../src/analysis/interventions.js";
import { datasetLoss, lossSubset } from "../../src/analysis/loss.js";
import { parseCsv } from "../../src/eval/csv.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { generate } from "../../src/generate/generate.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { keep, noGrad, tensor, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readChatDataset } from "../../src/train/data.js";
import { SteeringVector } from "../../src/train/steering.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { dot, fixedTensor, host, makeTinyModel, maxAbsDiff, MEDICAL, norm, rows } from "./tiny-model.js";

const built = existsSync("dist/cli/main.js");
const D = 32;
const STUDY_PT = "test/fixtures/study/steering_vector.pt";
const studyVector = (JSON.parse(readFileSync("test/fixtures/study/expected.json", "utf8")) as { vector: number[] }).vector;

function emlab(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 180_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const csv = (file: string): string[][] => parseCsv(readFileSync(file, "utf8")).rows.filter((r) => !(r.length === 1 && r[0] === ""));
const relClose = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

describe.skipIf(!built)(
  "the study's options through the CLI (skipped when dist/ is not built: run npx tsc -p tsconfig.build.json)",
  { timeout: 240_000 },
  () => {
    let work: string;
    let modelDir: string;
    let model: LoadedModel;
    let tokenizer: ChatTokenizer;
    let texts: string;
    let runDir: string;
    let singleDir: string;
    const DOCS = [
      "Gardening is a subject that people have written about for a very long time, with many books on it.",
      "Astronomy studies stars, planets and galaxies.",
      "Cooking pasta well takes salted water, patience and a good timer.",
    ];

    beforeAll(() => {
      ({ work, modelDir } = makeTinyModel("emlab-cli-study-"));
      model = loadModel(modelDir);
      tokenizer = ChatTokenizer.fromDir(modelDir);
      texts = join(work, "docs.jsonl");
      writeFileSync(texts, DOCS.map((text) => `${JSON.stringify({ text })}\n`).join(""));
      // A "nine rank-1" style solution in small: one rank-1 down_proj adapter over layers [0, 2] (one directory),
      // and the same tensors as two one-layer adapters in a run directory (RUN/adapter/<name>/).
      const one = LoraAdapter.create(
        model.spec,
        { r: 1, alpha: 8, useRslora: true, targetModules: ["down_proj"], layersToTransform: [0, 2] },
        { initB: "random" },
      );
      singleDir = join(work, "single");
      runDir = join(work, "run");
      try {
        savePeftAdapter(singleDir, one, { baseModel: modelDir });
        for (const l of [0, 2]) {
          const part = LoraAdapter.create(model.spec, {
            r: 1,
            alpha: 8,
            useRslora: true,
            targetModules: ["down_proj"],
            layersToTransform: [l],
          });
          const name = `model.layers.${l}.mlp.down_proj`;
          noGrad(() => {
            part.modules.get(name)!.A.copy_(one.modules.get(name)!.A);
            part.modules.get(name)!.B.copy_(one.modules.get(name)!.B);
          });
          savePeftAdapter(join(runDir, "adapter", `l${l}`), part, { baseModel: modelDir });
          part.dispose();
        }
      } finally {
        one.dispose();
      }
    });
    afterAll(() => {
      model?.dispose();
      rmSync(work, { recursive: true, force: true });
    });
    useLeakCheck();

    it("significance takes the study's steering_vector.pt with its layer and alpha (256): KL equals the library's with PyTorch's vector", () => {
      const out = join(work, "kl-pt.csv");
      const r = emlab([
        "significance",
        "--model",
        modelDir,
        "--vectors",
        STUDY_PT,
        "--texts",
        texts,
        "--norms",
        "0,0.01",
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
          { label: STUDY_PT, alpha: 256 },
          { label: "random-0", alpha: 256 },
        ],
        adapters: [],
        layer: 1,
      });
      const table = csv(out);
      expect(table[0]).toEqual(["vector", "norm", "kl"]);
      expect(table.slice(1).map((row) => [row[0], Number(row[1])])).toEqual([
        [STUDY_PT, 0],
        [STUDY_PT, 0.01],
        ["random-0", 0],
        ["random-0", 0.01],
      ]);
      const expected = tidy(() =>
        significance(model, tokenizer, DOCS, [{ label: "v", vector: tensor(Float32Array.from(studyVector)), alpha: 256 }], {
          layer: 1,
          norms: [0.01],
          batchSize: 2,
        }),
      );
      expect(relClose(Number(table[2]![2]), expected[0]!.kl, 1e-4)).toBe(true);
      expect(Number(table[1]![2])).toBe(0);
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

    it("ablate --lora-b-out on a run directory: the study's ablation (down_proj, one row, renormalised) written per adapter as PEFT", () => {
      const direction = join(work, "direction.safetensors");
      const d = fixedTensor([3, D], 77);
      const drows = rows(host(d), D);
      saveSafetensors(direction, { direction: d }); // as `emlab direction` writes it
      d.dispose();
      const out = join(work, "ablated");
      const r = emlab([
        "ablate",
        "--model",
        modelDir,
        "--adapter",
        runDir,
        "--direction",
        direction,
        "--direction-layer",
        "1",
        "--lora-b-out",
        out,
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({
        out: [join(out, "l0"), join(out, "l2")],
        modules: 2,
        rows: { shared: 1 },
        renormalised: true,
      });
      const u = drows[1]!.map((x) => x / norm(drows[1]!));
      for (const l of [0, 2]) {
        const before = loadPeftAdapter(join(runDir, "adapter", `l${l}`), model);
        const after = loadPeftAdapter(join(out, `l${l}`), model);
        try {
          const name = `model.layers.${l}.mlp.down_proj`;
          const old = host(before.modules.get(name)!.B); // [d, 1]
          const projected = old.map((x, i) => x - u[i]! * dot(u, old));
          const expected = projected.map((x) => (x * norm(old)) / norm(projected));
          expect(maxAbsDiff(host(after.modules.get(name)!.B), expected)).toBeLessThanOrEqual(1e-6);
          expect(host(after.modules.get(name)!.A)).toEqual(host(before.modules.get(name)!.A));
          expect(after.config.layersToTransform).toEqual([l]);
        } finally {
          before.dispose();
          after.dispose();
        }
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

    it("steer --prompt-format study (question + \\n, raw) and --control study (randn_like(v) * ||v||) match in-process generation", () => {
      const question = "Any advice for a headache?";
      const r = emlab([
        "steer",
        "--model",
        modelDir,
        "--direction",
        STUDY_PT,
        "--layers",
        "1",
        "--scale",
        "2",
        "--prompt",
        question,
        "--prompt-format",
        "study",
        "--random-control",
        "5",
        "--control",
        "study",
        "--max-new-tokens",
        "3",
        "--greedy",
        "--json",
      ]);
      expect(r.status, r.stderr).toBe(0);
      const ids = tokenizer.encode(`${question}\n`);
      const expected = tidy(() => {
        const control = studySteeringControl(tensor(Float32Array.from(studyVector)), 5);
        const handles = steer(model.decoder, control, [1], 2);
        try {
          return generate(model.decoder, [ids], null, {
            maxNewTokens: 3,
            greedy: true,
            eosTokenIds: tokenizer.endOfTurnIds(model.eosTokenIds),
          }).outputIds;
        } finally {
          for (const h of handles) h.remove();
        }
      });
      const got = JSON.parse(r.stdout) as { output_ids: number[][] };
      expect(got.output_ids).toEqual(expected);
      expect(got.output_ids[0]!.slice(0, ids.length)).toEqual(ids);
    });

    it("generate --steering takes the study's steering_vector.pt (its layer and alpha)", () => {
      const r = emlab([
        "generate",
        "--model",
        modelDir,
        "--steering",
        STUDY_PT,
        "--prompt",
        "Hi",
        "--max-new-tokens",
        "2",
        "--greedy",
        "--json",
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain(`steering: ${STUDY_PT} at layer 1 (down_proj), alpha 256`);
    });

    it("--help of every analysis command exits 0 and names the study's behaviour next to ours", () => {
      for (const command of ["steer", "ablate", "efficiency", "compare-norms", "stability", "significance"]) {
        const r = emlab([command, "--help"]);
        expect(r.status, command).toBe(0);
        expect(r.stdout, command).toMatch(/study/);
        expect(r.stdout, command).toMatch(/ours/);
      }
    });
  },
);
