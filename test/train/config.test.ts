// Covers the range checks of src/train/config.ts: a table of invalid run configs (the kinds an outside
// test found accepted: negative, zero, fractional, NaN and infinite values, betas outside [0, 1),
// adapter names that leave the adapter directory, ...) each refused with a RunConfigError naming the
// field; the boundary values that make sense accepted; YAML's .nan and .inf refused.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readRunConfig, resolveRunConfig, RunConfigError } from "../../src/train/config.js";

const base = (): Record<string, any> => ({
  model: "models/tiny",
  output_dir: "runs/x",
  method: "lora",
  lora: { r: 4, alpha: 8, target_modules: ["q_proj"] },
  data: { train: "train.jsonl" },
  training: {},
});

/** `base()` with `value` set at the dotted `path` (created as needed). */
function withField(path: string, value: unknown): Record<string, any> {
  const config = base();
  const keys = path.split(".");
  let node = config;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys[keys.length - 1]!] = value;
  return config;
}

// [dotted field, invalid value]: each must be refused, naming the field's last key.
const invalid: [string, unknown][] = [
  ["training.max_grad_norm", -1],
  ["training.max_grad_norm", 0],
  ["training.max_grad_norm", Number.NaN],
  ["training.lr", Number.NaN],
  ["training.lr", 0],
  ["training.lr", -1e-5],
  ["training.lr", Number.POSITIVE_INFINITY],
  ["training.max_steps", -5],
  ["training.max_steps", 0],
  ["training.max_steps", 2.5],
  ["training.batch_size", 1.5],
  ["training.batch_size", 0],
  ["training.batch_size", -2],
  ["training.gradient_accumulation", 0],
  ["training.gradient_accumulation", 0.5],
  ["training.epochs", 0],
  ["training.epochs", 1.5],
  ["training.epochs", Number.POSITIVE_INFINITY],
  ["training.warmup_steps", -1],
  ["training.warmup_steps", 0.5],
  ["training.betas", [2, 0.999]],
  ["training.betas", [0.9, 1]],
  ["training.betas", [-0.1, 0.999]],
  ["training.betas", [0.9, Number.NaN]],
  ["training.eps", 0],
  ["training.eps", -1e-8],
  ["training.weight_decay", -0.01],
  ["training.weight_decay", Number.NaN],
  ["training.save_steps", 0],
  ["training.save_steps", 1.5],
  ["training.eval_steps", 0],
  ["training.seed", -1],
  ["training.seed", 0.5],
  ["training.seed", 2 ** 32],
  ["training.early_stop", { loss_below: Number.NaN, patience: 1 }],
  ["training.early_stop", { loss_below: 1, patience: -1 }],
  ["training.device", ""],
  ["training.on_nonfinite", "ignore"],
  ["data.max_length", 0],
  ["data.max_length", 1],
  ["data.max_length", 100.5],
  ["data.eval_fraction", -0.1],
  ["data.eval_fraction", 1],
  ["data.bucket_window", -1],
  ["data.train", ""],
  ["lora.r", 0],
  ["lora.r", 2.5],
  ["lora.alpha", 0],
  ["lora.alpha", Number.NaN],
  ["lora.dropout", 1],
  ["lora.dropout", -0.1],
  ["lora.target_modules", []],
  ["lora.layers_to_transform", [-1]],
  ["lora.layers_to_transform", [0.5]],
  ["lora.name", "../../../escape-adapter"],
  ["lora.name", "a/b"],
  ["lora.name", ".."],
  ["lora.name", ""],
  ["kl", { data: "kl.jsonl", weight: -1, normalization: "token" }],
  ["kl", { data: "kl.jsonl", weight: 1, batch_size: 0, normalization: "token" }],
  ["steering", { layer: -1 }],
  ["steering", { layer: 1.5 }],
  ["model", ""],
  ["output_dir", ""],
];

describe("invalid run configs", () => {
  it("the table holds at least 47 invalid configs", () => expect(invalid.length).toBeGreaterThanOrEqual(47));

  for (const [field, value] of invalid) {
    it(`${field}: ${JSON.stringify(value) ?? String(value)} (${String(value)}) is refused naming the field`, () => {
      const config = withField(field, value);
      if (field === "steering") config.method = "steering";
      let error: unknown;
      try {
        resolveRunConfig(config, "run.yaml");
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(RunConfigError);
      const message = (error as Error).message;
      expect(message.startsWith("run.yaml: ")).toBe(true);
      const last = field.split(".").at(-1)!;
      expect(message).toContain(last);
    });
  }

  it("several LoRA sections with the same name are refused", () => {
    const config = base();
    config.lora = [
      { r: 1, alpha: 1, target_modules: ["down_proj"], name: "same" },
      { r: 1, alpha: 1, target_modules: ["down_proj"], name: "same" },
    ];
    expect(() => resolveRunConfig(config, "run.yaml")).toThrow(/distinct/);
  });

  it("full.parameters that is not a regular expression is refused", () => {
    const config = { ...base(), method: "full", full: { parameters: "([" } };
    expect(() => resolveRunConfig(config, "run.yaml")).toThrow(/full.parameters/);
  });
});

describe("valid boundary values are accepted", () => {
  const valid: [string, unknown][] = [
    ["training.max_grad_norm", null],
    ["training.max_grad_norm", 1e-6],
    ["training.max_steps", 1],
    ["training.max_steps", null],
    ["training.warmup_steps", 0],
    ["training.betas", [0, 0]],
    ["training.betas", [0.9, 0.999999]],
    ["training.weight_decay", 0],
    ["training.seed", 2 ** 32 - 1],
    ["training.eval_steps", null],
    ["training.on_nonfinite", "skip"],
    ["data.max_length", 2],
    ["data.eval_fraction", 0],
    ["lora.dropout", 0],
    ["lora.name", "adapter_0.v2-final"],
    ["kl", { data: "kl.jsonl", weight: 0, normalization: "token" }],
  ];
  for (const [field, value] of valid) {
    it(`${field}: ${JSON.stringify(value)}`, () => {
      const resolved = resolveRunConfig(withField(field, value), "run.yaml") as unknown as Record<string, any>;
      const keys = field.split(".");
      let node: any = resolved;
      for (const key of keys) node = Array.isArray(node) ? node[0][key] : node[key];
      expect(node).toEqual(value === null ? null : typeof value === "object" ? expect.objectContaining(value as object) : value);
    });
  }
});

describe("YAML", () => {
  const dir = mkdtempSync(join(tmpdir(), "emlab-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  for (const [text, field] of [
    ["lr: .nan", "lr"],
    ["lr: .inf", "lr"],
    ["max_grad_norm: -.inf", "max_grad_norm"],
    ["batch_size: 1.5", "batch_size"],
  ] as const) {
    it(`${text} is refused`, () => {
      const file = join(dir, `${field}.yaml`);
      writeFileSync(
        file,
        `model: m\noutput_dir: o\nmethod: lora\nlora: { r: 1, alpha: 1, target_modules: [q_proj] }\ndata: { train: t.jsonl }\ntraining: { ${text} }\n`,
      );
      expect(() => readRunConfig(file)).toThrow(RunConfigError);
      expect(() => readRunConfig(file)).toThrow(field);
    });
  }
});
