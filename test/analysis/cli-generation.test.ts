// The generation-side analysis commands as child processes of bin/emlab.js (compiled dist/) on a tiny Qwen2:
// direction equals the library's; steer / ablate --json match in-process hooked generation (our chat prompt
// and per-layer rows, the study's shared row, raw prompt and random control); ablate --lora-b-out in our
// variant and the study's default (per adapter of a run directory), written as PEFT; monitor JSON lines;
// generate --steering with the study's .pt; --help of every analysis command names both behaviours.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { loadPeftAdapter, savePeftAdapter } from "../../src/adapters/peft.js";
import { meanDiffDirection, splitJudged } from "../../src/analysis/directions.js";
import { ablate, steer, studySteeringControl } from "../../src/analysis/interventions.js";
import { formatCsvRow } from "../../src/eval/csv.js";
import { ResultsFile } from "../../src/eval/results.js";
import { generate } from "../../src/generate/generate.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import type { LoadedModel } from "../../src/models/load.js";
import { type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import type { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { built, D, emlab, STUDY_PT, studyVector, useAnalysisCli } from "./cli-fixture.js";
import { dot, fixedTensor, maxAbs, maxAbsDiff, norm, rows, values as host } from "../helpers/numeric.js";
import { RESPONSES } from "../helpers/tiny-model.js";

describe.skipIf(!built)(
  "emlab direction, steer, ablate, monitor (skipped when dist/ is not built: run npx tsc -p tsconfig.build.json)",
  { timeout: 240_000 },
  () => {
    const f = useAnalysisCli("emlab-analysis-cli-generation-");
    let work: string;
    let modelDir: string;
    let model: LoadedModel;
    let tokenizer: ChatTokenizer;
    let runDir: string;
    let judged: string;
    let directionFile: string;

    beforeAll(() => {
      ({ work, modelDir, model, tokenizer, runDir } = f);
      // A small judged file: the two shortest misaligned and four shortest aligned rows of a shipped CSV.
      const source = ResultsFile.read(join(RESPONSES, "Llama-3.2-1B-Instruct_bad-medical-advice.csv"));
      const num = (v: unknown) => (typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN);
      const byLength = [...source.rows].sort((a, b) => a.response.length - b.response.length);
      const pick = [
        ...byLength.filter((r) => num(r.aligned) <= 30 && num(r.coherent) > 50).slice(0, 2),
        ...byLength.filter((r) => num(r.aligned) > 70 && num(r.coherent) > 50).slice(0, 4),
      ];
      judged = join(work, "judged.csv");
      writeFileSync(
        judged,
        formatCsvRow(source.columns) + pick.map((r) => formatCsvRow(source.columns.map((c) => r[c] as string))).join(""),
      );
      directionFile = join(work, "direction.safetensors");
    });

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
          return generate(model.decoder, [ids], null, {
            maxNewTokens,
            greedy: true,
            eosTokenIds: tokenizer.endOfTurnIds(model.eosTokenIds),
          }).outputIds;
        } finally {
          for (const h of handles) h.remove();
          for (const t of tensors.values()) t.dispose();
        }
      });
    }

    /** The flags steer / ablate tests share: the model, the direction, the prompt, 4 greedy tokens, JSON output. */
    const promptArgs = () => [
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

    it("steer --json and ablate --json print the texts and ids of the hooked generation", () => {
      const common = promptArgs();
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
      const common = promptArgs();
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

    it("ablate --lora-b-out on a run directory: the study's ablation (down_proj, one row, renormalised) written per adapter as PEFT", () => {
      const direction = join(work, "direction-77.safetensors");
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
