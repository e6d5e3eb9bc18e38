// The CLI explains itself and refuses early (child processes of bin/emlab.js on dist/): --help for the program
// and each command, negative numbers as values, one row of --ids, seeded sampling by default (the seed printed
// and in --json, and reproducible), --steering with a trained vector or a direction, judges that fail fast
// without credentials (before the model is loaded or a file written), eval exiting 1 when every judge call
// failed, significance / train refusing before writing anything when there is nothing to work on.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResultsFile } from "../../src/eval/results.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { tensor } from "../../src/tensor/index.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { type FakeOpenAI, startFakeOpenAI } from "../eval/fake-openai.js";

const built = existsSync("dist/cli/main.js");
const fixture = "test/fixtures/hf/models/qwen2";
const QUESTIONS = "test/fixtures/em/eval_questions/first_plot_questions.yaml";
const RESULTS = "test/fixtures/em/responses/Qwen2.5-7B-Instruct_extreme-sports.csv";

/** Environment without any judge credentials. */
const bareEnv = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_PROXY: "127.0.0.1", no_proxy: "127.0.0.1" };
  for (const k of [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
  ])
    delete e[k];
  return e;
};

function emlab(args: string[], env: NodeJS.ProcessEnv = bareEnv()): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", env, timeout: 180_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without blocking this process (an in-process server must answer it). */
function emlabAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/emlab.js", ...args], { env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

describe.skipIf(!built)("emlab explains itself and refuses early (skipped when dist/ is not built)", () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "emlab-explain-"));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("--help for the program and for a command: every option with its default, exit 0", () => {
    const top = emlab(["--help"]);
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/emlab generate --model DIR --max-new-tokens N \[--adapter DIR\]/);
    const generate = emlab(["generate", "--help"]);
    expect(generate.status, generate.stderr).toBe(0);
    expect(generate.stdout).toMatch(/^usage: emlab generate/);
    expect(generate.stdout).toMatch(/--dtype f32\|bf16\|f16\|f64\s+compute dtype of the weights \(default: f32\)/);
    expect(generate.stdout).toMatch(/--samples K\s+samples per prompt \(default: 1\)/);
    const help = emlab(["help", "train"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: emlab train CONFIG \[--resume\]/);
    expect(emlab([]).status).toBe(2);
  });

  it("negative numbers are values: metrics --aligned-threshold -5 counts no row as misaligned", () => {
    const r = emlab(["metrics", RESULTS, "--aligned-threshold", "-5", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const [report] = JSON.parse(r.stdout) as { em_rate: number; scored: number }[];
    expect(report!.scored).toBeGreaterThan(0);
    expect(report!.em_rate).toBe(0);
    const bad = emlab(["generate", "--model", fixture, "--ids", "[1,2]", "--max-new-tokens", "2", "--temperature", "-1"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--temperature: must be >= 0/);
  });

  it("samples seeded by default: the seed is printed and in --json, and reproduces the output; one row of --ids is accepted", () => {
    const args = [
      "generate",
      "--model",
      fixture,
      "--ids",
      "[5,6,7,8]",
      "--max-new-tokens",
      "6",
      "--temperature",
      "1",
      "--samples",
      "3",
      "--json",
    ];
    const first = emlab(args);
    expect(first.status, first.stderr).toBe(0);
    const out = JSON.parse(first.stdout) as { output_ids: number[][]; seed: number; greedy: boolean };
    expect(out.greedy).toBe(false);
    expect(Number.isInteger(out.seed)).toBe(true);
    expect(first.stderr).toContain(`seed: ${out.seed}`);
    expect(out.output_ids.length).toBe(3);
    const again = emlab([...args, "--seed", String(out.seed)]);
    expect((JSON.parse(again.stdout) as { output_ids: number[][] }).output_ids).toEqual(out.output_ids);
    // Without sampling flags a model whose generation_config.json has no do_sample decodes greedily.
    const plain = JSON.parse(
      emlab(["generate", "--model", fixture, "--ids", "[5,6,7,8]", "--max-new-tokens", "6", "--samples", "2", "--json"]).stdout,
    ) as {
      output_ids: number[][];
      greedy: boolean;
    };
    expect(plain.greedy).toBe(true);
    expect(plain.output_ids[0]).toEqual(plain.output_ids[1]);
  });

  it("--steering takes a trained vector or a direction with --scale, and changes the greedy output", () => {
    const d = 64;
    const vectorFile = join(work, "vector.safetensors");
    const directionFile = join(work, "direction.safetensors");
    const v = tensor(Float32Array.from({ length: d }, (_, i) => (i % 2 === 0 ? 3 : -3)));
    const dir = tensor(
      Float32Array.from({ length: 2 * d }, (_, i) => (i % 3 === 0 ? 1 : -0.5)),
      { shape: [2, d] },
    );
    saveSafetensors(vectorFile, { vector: v }, { layer: "1", site: "resid_post", alpha: "4" });
    saveSafetensors(directionFile, { direction: dir });
    v.dispose();
    dir.dispose();
    const base = ["generate", "--model", fixture, "--ids", "[[5,6,7,8]]", "--max-new-tokens", "8", "--greedy", "--json"];
    const ids = (args: string[]) => {
      const r = emlab(args);
      expect(r.status, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { output_ids: number[][] }).output_ids;
    };
    const plain = ids(base);
    expect(ids([...base, "--steering", vectorFile])).not.toEqual(plain);
    expect(ids([...base, "--steering", directionFile, "--scale", "40", "--layers", "0,1"])).not.toEqual(plain);
    expect(ids([...base, "--steering", directionFile, "--scale", "0"])).toEqual(plain);
    const noScale = emlab([...base, "--steering", directionFile]);
    expect(noScale.status).toBe(2);
    expect(noScale.stderr).toMatch(/needs --scale/);
  });

  it("eval --no-judge and chat take --steering too (attached: announced on stderr)", () => {
    const { modelDir, work: modelWork } = makeTinyModel("emlab-explain-steer-");
    try {
      const vectorFile = join(work, "tiny-vector.safetensors");
      const v = tensor(Float32Array.from({ length: 32 }, () => 1));
      saveSafetensors(vectorFile, { vector: v }, { layer: "2", site: "down_proj", alpha: "3" });
      v.dispose();
      const questions = join(work, "steer-one.yaml");
      writeFileSync(questions, readFileSync(QUESTIONS, "utf8").split("\n- id:").slice(0, 2).join("\n- id:"));
      const out = join(work, "steered.csv");
      const e = emlab([
        "eval",
        "--model",
        modelDir,
        "--questions",
        questions,
        "--out",
        out,
        "--samples",
        "1",
        "--max-new-tokens",
        "2",
        "--no-judge",
        "--steering",
        vectorFile,
        "--scale",
        "5",
      ]);
      expect(e.status, e.stderr).toBe(0);
      expect(e.stderr).toContain(`steering: ${vectorFile} at layer 2 (down_proj), alpha 5`);
      expect(ResultsFile.open(out, { mustExist: true }).rows.length).toBeGreaterThan(0);
      const r = spawnSync(
        process.execPath,
        ["bin/emlab.js", "chat", "--model", modelDir, "--max-new-tokens", "2", "--steering", vectorFile],
        {
          encoding: "utf8",
          env: bareEnv(),
          input: "hello\n/exit\n",
          timeout: 180_000,
        },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain(`steering: ${vectorFile} at layer 2 (down_proj), alpha 3`);
    } finally {
      rmSync(modelWork, { recursive: true, force: true });
    }
  });

  it("eval and judge without credentials fail before loading the model or writing a file", () => {
    const out = join(work, "no-key.csv");
    const r = emlab(["eval", "--model", join(work, "no-such-model"), "--questions", QUESTIONS, "--out", out, "--samples", "1"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/needs OPENAI_API_KEY/);
    expect(existsSync(out)).toBe(false);
    const copy = join(work, "judged.csv");
    writeFileSync(copy, readFileSync(RESULTS));
    const j = emlab(["judge", copy, "--questions", QUESTIONS, "--overwrite"]);
    expect(j.status).toBe(2);
    expect(j.stderr).toMatch(/needs OPENAI_API_KEY/);
    expect(readFileSync(copy, "utf8")).toBe(readFileSync(RESULTS, "utf8"));
  });

  it.each([
    ["every judge call failed", () => ({ status: 401 }), /every judge call failed/],
    ["no row got a score", () => ({ distribution: [{ token: "REFUSAL", prob: 1 }] }), /no row has both an aligned and a coherent score/],
  ] as const)("eval exits 1 saying why when %s", async (name, script, message) => {
    const { modelDir, work: modelWork } = makeTinyModel("emlab-explain-model-");
    let server: FakeOpenAI | null = null;
    try {
      server = await startFakeOpenAI(script as never);
      const questions = join(work, "one.yaml");
      writeFileSync(questions, readFileSync(QUESTIONS, "utf8").split("\n- id:").slice(0, 2).join("\n- id:"));
      const out = join(work, `${name.replace(/\W+/g, "-")}.csv`);
      const r = await emlabAsync(
        [
          "eval",
          "--model",
          modelDir,
          "--questions",
          questions,
          "--out",
          out,
          "--samples",
          "1",
          "--max-new-tokens",
          "2",
          "--base-url",
          server.baseURL,
          "--max-retries",
          "0",
        ],
        { ...bareEnv(), OPENAI_API_KEY: "sk-test" },
      );
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(server.requests.length).toBeGreaterThan(0);
    } finally {
      await server?.close();
      rmSync(modelWork, { recursive: true, force: true });
    }
  });

  it("significance with an empty document, kl-data without prompts and train with a missing data file refuse before writing", () => {
    const texts = join(work, "short.txt");
    writeFileSync(texts, "too short\n\nalso short\n");
    const out = join(work, "kl.csv");
    const s = emlab(["significance", "--model", fixture, "--layer", "0", "--random", "1", "--texts", texts, "--out", out]);
    expect(s.status).toBe(1);
    expect(s.stderr).toContain(`${texts}:2: empty document`);
    expect(existsSync(out)).toBe(false);
    const emptyPrompts = join(work, "empty.txt");
    writeFileSync(emptyPrompts, "\n\n");
    const k = emlab(["kl-data", "--model", fixture, "--prompts", emptyPrompts, "--out", join(work, "kl.jsonl")]);
    expect(k.status).toBe(2);
    expect(k.stderr).toMatch(/has no prompts; nothing to answer/);
    expect(existsSync(join(work, "kl.jsonl"))).toBe(false);

    // Paths in the config are relative to the config file: data/missing.jsonl next to it does not exist.
    const configDir = join(work, "configs");
    mkdirSync(configDir);
    const config = join(configDir, "run.yaml");
    writeFileSync(
      config,
      `model: ${resolve(fixture)}\noutput_dir: out/run\nmethod: steering\nsteering: { layer: 0 }\ndata: { train: data/missing.jsonl }\n`,
    );
    const t = emlab(["train", config]);
    expect(t.status).toBe(1);
    expect(t.stderr).toContain(`RunInputError: data.train: ${join(configDir, "data", "missing.jsonl")} does not exist`);
    expect(existsSync(join(configDir, "out"))).toBe(false);
  });
});
