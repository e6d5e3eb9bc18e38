// What the analysis CLI tests share (test/analysis/cli-*.test.ts): running bin/emlab.js on dist/ as a
// child process, reading its CSV outputs, the study's steering_vector.pt fixture, and one setup: a tiny
// Qwen2 (3 layers, d_model 32) loaded in-process for the expected values, a steering vector file, and a
// rank-1 down_proj LoRA solution over layers 0 and 2 saved both as one directory and as a run directory
// of two one-layer adapters (RUN/adapter/l0, l2: the same solution).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { savePeftAdapter } from "../../src/adapters/peft.js";
import { parseCsv } from "../../src/eval/csv.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { noGrad, tidy } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { fixedTensor, values as host } from "../helpers/numeric.js";
import { makeTinyModel } from "../helpers/tiny-model.js";

/** Whether dist/ is built (the CLI tests are skipped, with that reason, when it is not). */
export const built = existsSync("dist/cli/main.js");
export const D = 32;
export const STUDY_PT = "test/fixtures/study/steering_vector.pt";
/** The values of STUDY_PT as PyTorch saved them (layer 1, alpha 256). */
export const studyVector = (JSON.parse(readFileSync("test/fixtures/study/expected.json", "utf8")) as { vector: number[] }).vector;

export function emlab(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 180_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export const csv = (file: string): string[][] => parseCsv(readFileSync(file, "utf8")).rows.filter((r) => !(r.length === 1 && r[0] === ""));
export const relClose = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

export interface AnalysisCliFixture {
  work: string;
  modelDir: string;
  /** The tiny model loaded in-process (expected values). */
  model: LoadedModel;
  tokenizer: ChatTokenizer;
  /** A steering vector file (layer 1, down_proj, alpha 1) and its values. */
  vectorFile: string;
  vector: number[];
  /** The rank-1 LoRA solution as one directory, and as a run directory of two adapters. */
  singleDir: string;
  runDir: string;
}

/** Registers the shared setup (and the leak check) in the calling describe block; the fields are set in beforeAll. */
export function useAnalysisCli(prefix: string): AnalysisCliFixture {
  const f = {} as AnalysisCliFixture;
  beforeAll(() => {
    ({ work: f.work, modelDir: f.modelDir } = makeTinyModel(prefix));
    f.model = loadModel(f.modelDir);
    f.tokenizer = ChatTokenizer.fromDir(f.modelDir);
    f.vectorFile = join(f.work, "steering_vector.safetensors");
    tidy(() => {
      const v = fixedTensor([D], 201, 0.3);
      f.vector = host(v);
      saveSafetensors(f.vectorFile, { vector: v }, { layer: "1", site: "down_proj", alpha: "1" });
    });
    // A "nine rank-1" style solution in small: one rank-1 down_proj adapter over layers [0, 2] (one directory),
    // and the same tensors as two one-layer adapters in a run directory (RUN/adapter/<name>/).
    const one = LoraAdapter.create(
      f.model.spec,
      { r: 1, alpha: 8, useRslora: true, targetModules: ["down_proj"], layersToTransform: [0, 2] },
      { initB: "random" },
    );
    f.singleDir = join(f.work, "single");
    f.runDir = join(f.work, "run");
    try {
      savePeftAdapter(f.singleDir, one, { baseModel: f.modelDir });
      for (const l of [0, 2]) {
        const part = LoraAdapter.create(f.model.spec, {
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
        savePeftAdapter(join(f.runDir, "adapter", `l${l}`), part, { baseModel: f.modelDir });
        part.dispose();
      }
    } finally {
      one.dispose();
    }
  });
  afterAll(() => {
    f.model?.dispose();
    if (f.work) rmSync(f.work, { recursive: true, force: true });
  });
  useLeakCheck();
  return f;
}
