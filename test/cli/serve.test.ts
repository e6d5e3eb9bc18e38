// `emlab serve` as a user runs it (a child process of bin/emlab.js on dist/): --lora / --steer names
// (NAME=DIR, NAME=FILE[:ALPHA]) become model names; an ALPHA overrides the file's; bad specs and
// clashing names are refused before listening; SIGTERM shuts it down with exit 0.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoraAdapter } from "../../src/adapters/lora.js";
import { savePeftAdapter } from "../../src/adapters/peft.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { parseNamedPath, ServeConfigError } from "../../src/serve/models.js";
import { manualSeed, tidy } from "../../src/tensor/index.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { fixedTensor } from "../helpers/numeric.js";

let work: string;
let modelDir: string;
let loraDir: string;
let steerFile: string;

beforeAll(() => {
  ({ work, modelDir } = makeTinyModel("emlab-serve-cli-", 2));
  const model = loadModel(modelDir);
  manualSeed(2);
  const adapter = LoraAdapter.create(model.spec, { r: 2, alpha: 8, targetModules: ["q_proj", "down_proj"] }, { initB: "random" });
  loraDir = join(work, "lora");
  savePeftAdapter(loraDir, adapter);
  adapter.dispose();
  model.dispose();
  steerFile = join(work, "vector.safetensors");
  tidy(() => saveSafetensors(steerFile, { vector: fixedTensor([32], 9, 10) }, { layer: "0", site: "down_proj", alpha: "1" }));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cli = (args: string[]) => spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8", timeout: 120_000 });

function serve(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ["bin/emlab.js", "serve", "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match) resolve({ child, url: match[1]! });
    });
    child.on("exit", (code) => reject(new Error(`emlab serve exited with ${code}: ${stderr}`)));
  });
}

describe("parseNamedPath", () => {
  it("NAME=PATH, NAME=FILE:ALPHA (a trailing number only), and refusals naming the flag", () => {
    expect(parseNamedPath("--lora", "a=/x/y", false)).toEqual({ name: "a", path: "/x/y" });
    expect(parseNamedPath("--steer", "s=/x/v.safetensors:-2.5", true)).toEqual({ name: "s", path: "/x/v.safetensors", alpha: -2.5 });
    expect(parseNamedPath("--steer", "s=/x/c:d/v.safetensors", true)).toEqual({ name: "s", path: "/x/c:d/v.safetensors" });
    for (const bad of ["noequals", "=dir", "name=", "bad name=dir"])
      expect(() => parseNamedPath("--lora", bad, false)).toThrow(ServeConfigError);
  });
});

describe("emlab serve (child process)", () => {
  it("serves --lora and --steer names; an ALPHA overrides the file's; SIGTERM exits 0", async () => {
    const { child, url } = await serve([
      "--model",
      modelDir,
      "--served-model-name",
      "tiny",
      "--lora",
      `tuned=${loraDir}`,
      "--steer",
      `steer1=${steerFile},steer8=${steerFile}:8`,
    ]);
    try {
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(["tiny", "tuned", "steer1", "steer8"]);
      const answer = async (model: string) => {
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 6, temperature: 0 }),
        });
        return ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
      };
      const texts = await Promise.all(["tiny", "tuned", "steer1", "steer8"].map(answer));
      expect(new Set(texts).size).toBe(4);
    } finally {
      child.kill("SIGTERM");
    }
    const code = await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on("exit", resolve)));
    expect(code).toBe(0);
  }, 120_000);

  it("bad --lora / --steer specs and clashing names are refused before listening", () => {
    const cases: [string[], RegExp][] = [
      [["--lora", "noequals"], /ServeConfigError: --lora: expected NAME=DIR/],
      [["--lora", `tiny=${loraDir}`, "--served-model-name", "tiny"], /given twice/],
      [["--lora", `a=${join(work, "missing")}`], /AdapterError: .*no such adapter directory/],
      [["--steer", `s=${join(work, "missing.safetensors")}`], /missing\.safetensors/],
    ];
    for (const [args, message] of cases) {
      const r = cli(["serve", "--model", modelDir, "--port", "0", ...args]);
      expect(r.status, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/listening on/);
    }
  }, 120_000);
});
