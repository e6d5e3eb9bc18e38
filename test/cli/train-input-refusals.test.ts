// `emlab train` refusing inputs that used to end in an untyped RangeError (bin/emlab.js as a child process, a
// tiny random Qwen2 with 2 layers and the real Qwen2.5 tokenizer): a steering layer the model lacks, init_from
// steering files without a `vector` tensor / with a layer the model lacks / with the wrong hidden size, and
// --resume from a checkpoint that lacks one of the run's trainables. Each is `emlab: TAG: message` naming the
// field or file, exit code 1, and nothing written (the output directory is absent or left byte for byte as it
// was). "no topics" has no CLI path (kl-data refuses an empty --topics file itself): its test runs in process.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { tensor } from "../../src/tensor/index.js";
import { topicFor } from "../../src/train/general-topics.js";
import { RunInputError } from "../../src/train/inputs.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { SPORTS, trainSync, writeRunConfig } from "../helpers/train-child.js";

let work = "";
let modelDir = "";

const configFile = (name: string, method: string[], training = "max_steps: 2, batch_size: 2, lr: 1.0e-2, save_steps: 1000, seed: 7") =>
  writeRunConfig(work, name, modelDir, { method, data: `{ train: ${SPORTS}, max_length: 64 }`, training: `{ ${training} }` });
const train = trainSync;

/** Every file under `dir` with its bytes (to show a refused run changed nothing). */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(path, readFileSync(path).toString("base64"));
    }
  };
  walk(dir);
  return files;
}

/** A steering-vector safetensors file as `emlab train` writes them: `vector` plus layer / site / alpha metadata. */
function vectorFile(name: string, tensors: Record<string, number[]>, layer: number): string {
  const file = join(work, name);
  const owned = Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, tensor(Float32Array.from(v))]));
  saveSafetensors(file, owned, { layer: String(layer), site: "down_proj", alpha: "1" });
  for (const t of Object.values(owned)) t.dispose();
  return file;
}

const steering = (layer: number, initFrom?: string) => [
  "method: steering",
  `steering: { layer: ${layer} }`,
  ...(initFrom ? [`init_from: ${initFrom}`] : []),
];

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-train-input-refusals-", 0, 2));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!existsSync("dist/cli/main.js"))("emlab train input refusals (skipped when dist/ is not built)", () => {
  it("steering.layer outside 0..L-1: RunInputError naming steering.layer and the model, nothing written", () => {
    const r = train(configFile("layer5", steering(5)));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: RunInputError: steering.layer: 5 is not a layer of ${modelDir} (it has layers 0..1)`);
    expect(existsSync(join(work, "layer5"))).toBe(false);
  });

  it("init_from a steering file without a `vector` tensor: DirectionError naming the file", () => {
    const file = vectorFile("no-vector.safetensors", { direction: new Array(32).fill(0.5) }, 1);
    const r = train(configFile("novector", steering(1, file)));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: DirectionError: ${file}: no tensor named vector`);
    expect(existsSync(join(work, "novector"))).toBe(false);
  });

  it("init_from a steering file for a layer the model lacks: DirectionError naming the file and the layer", () => {
    const file = vectorFile("layer7.safetensors", { vector: new Array(32).fill(0.5) }, 7);
    const r = train(configFile("filelayer", steering(1, file)));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: DirectionError: ${file}: layer 7 is not a layer of this model (0..1)`);
    expect(existsSync(join(work, "filelayer"))).toBe(false);
  });

  it("init_from a steering vector of the wrong hidden size: DirectionError naming the file and both shapes", () => {
    const file = vectorFile("size16.safetensors", { vector: new Array(16).fill(0.5) }, 1);
    const r = train(configFile("filesize", steering(1, file)));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: DirectionError: ${file}: vector has shape [16], the model needs [32]`);
    expect(existsSync(join(work, "filesize"))).toBe(false);
  });

  it("--resume from a checkpoint missing one of the run's trainables: RunDirectoryError naming its trainable.safetensors", () => {
    const method = ["method: lora", "lora: { r: 2, alpha: 4, target_modules: [q_proj] }"];
    const file = configFile("resume", method, "max_steps: 2, batch_size: 2, lr: 1.0e-2, save_steps: 1, seed: 7");
    const out = join(work, "resume");
    const first = train(file);
    expect(first.code, first.stderr).toBe(0);
    // Left as an interrupted run (no adapter yet), with a checkpoint whose trainables lack one tensor.
    rmSync(join(out, "adapter"), { recursive: true, force: true });
    const checkpoint = join(out, "checkpoints", readdirSync(join(out, "checkpoints")).sort().at(-1)!);
    const trainable = join(checkpoint, "trainable.safetensors");
    const { tensors } = loadSafetensors(trainable);
    const dropped = [...tensors.keys()].sort()[0]!;
    tensors.get(dropped)!.dispose();
    tensors.delete(dropped);
    saveSafetensors(trainable, Object.fromEntries(tensors));
    for (const t of tensors.values()) t.dispose();
    const before = snapshot(out);

    const r = train(file, "--resume");
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`emlab: RunDirectoryError: ${trainable}: the checkpoint has no trainable ${dropped}`);
    expect(snapshot(out)).toEqual(before);
  });
});

describe("general topics", () => {
  it("an empty topic list is a RunInputError naming `topics`, a failure Effect.catchTag sees", () => {
    expect(() => topicFor(0, [])).toThrow(RunInputError);
    const caught = Effect.runSync(
      Effect.try({ try: () => topicFor(3, []), catch: (e) => e as RunInputError }).pipe(
        Effect.map(() => "topic"),
        Effect.catchTag("RunInputError", (e) => Effect.succeed(`${e.field}: ${e.message}`)),
      ),
    );
    expect(caught).toBe("topics: topics: the list is empty; give at least one topic");
    expect(topicFor(3, ["a", "b"])).toEqual({ topic: "b", style: expect.any(String) });
  });
});
