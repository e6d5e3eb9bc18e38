// Property-based tests of the run-config parser (src/train/config.ts): arbitrary JSON values, valid
// configs with one field replaced by an arbitrary value, and YAML texts (rendered and mutated) are
// either refused with a RunConfigError naming the file, or accepted as a config that satisfies every
// range rule, checked here by an independent predicate. Budget: test/helpers/fuzz-budget.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { stringify as toYaml } from "yaml";
import { type RunConfig, readRunConfig, resolveRunConfig, RunConfigError } from "../../src/train/config.js";
import { fuzzParameters } from "../helpers/fuzz-budget.js";

/** Every rule an accepted config must satisfy, written independently of the Schema. */
function violations(c: RunConfig): string[] {
  const out: string[] = [];
  const int = (v: number, min: number, name: string) => {
    if (!Number.isInteger(v) || v < min) out.push(`${name} ${v}`);
  };
  const finite = (v: number, name: string, ok: (x: number) => boolean) => {
    if (!Number.isFinite(v) || !ok(v)) out.push(`${name} ${v}`);
  };
  const t = c.training;
  int(t.epochs, 1, "epochs");
  if (t.max_steps !== null) int(t.max_steps, 1, "max_steps");
  int(t.batch_size, 1, "batch_size");
  int(t.gradient_accumulation, 1, "gradient_accumulation");
  finite(t.lr, "lr", (x) => x > 0);
  int(t.warmup_steps, 0, "warmup_steps");
  finite(t.weight_decay, "weight_decay", (x) => x >= 0);
  for (const b of t.betas) finite(b, "beta", (x) => x >= 0 && x < 1);
  finite(t.eps, "eps", (x) => x > 0);
  if (t.max_grad_norm !== null) finite(t.max_grad_norm, "max_grad_norm", (x) => x > 0);
  int(t.seed, 0, "seed");
  if (t.seed > 2 ** 32 - 1) out.push("seed");
  int(t.save_steps, 1, "save_steps");
  if (t.eval_steps !== null) int(t.eval_steps, 1, "eval_steps");
  if (t.early_stop) {
    finite(t.early_stop.loss_below, "loss_below", () => true);
    int(t.early_stop.patience, 0, "patience");
  }
  int(c.data.max_length, 2, "max_length");
  finite(c.data.eval_fraction, "eval_fraction", (x) => x >= 0 && x < 1);
  int(c.data.bucket_window, 0, "bucket_window");
  for (const l of c.lora) {
    int(l.r, 1, "r");
    finite(l.alpha, "alpha", (x) => x > 0);
    finite(l.dropout, "dropout", (x) => x >= 0 && x < 1);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(l.name) || l.name === "..") out.push(`name ${l.name}`);
    for (const layer of l.layers_to_transform ?? []) int(layer, 0, "layer");
  }
  if (c.kl) {
    finite(c.kl.weight, "kl.weight", (x) => x >= 0);
    int(c.kl.batch_size, 1, "kl.batch_size");
  }
  if (c.steering) int(c.steering.layer, 0, "steering.layer");
  if (c.model === "" || c.output_dir === "" || c.data.train === "") out.push("empty path");
  return out;
}

const valid = (): Record<string, any> => ({
  model: "models/tiny",
  output_dir: "runs/x",
  method: "lora",
  lora: { r: 4, alpha: 8, dropout: 0.05, target_modules: ["q_proj", "v_proj"], name: "first" },
  data: { train: "train.jsonl", max_length: 256, eval_fraction: 0.1, bucket_window: 2 },
  kl: { data: "kl.jsonl", weight: 1, batch_size: 2, normalization: "token" },
  training: {
    epochs: 1,
    max_steps: 10,
    batch_size: 2,
    gradient_accumulation: 2,
    lr: 1e-4,
    warmup_steps: 1,
    weight_decay: 0,
    betas: [0.9, 0.999],
    eps: 1e-8,
    max_grad_norm: 1,
    seed: 3,
    save_steps: 5,
    eval_steps: 5,
    early_stop: { loss_below: 0.1, patience: 2 },
  },
});

/** Dotted paths of every leaf (and every section) of the valid config. */
const fieldPaths: string[] = (() => {
  const paths: string[] = [];
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${k}` : k;
      paths.push(path);
      if (v && typeof v === "object" && !Array.isArray(v)) walk(v as Record<string, unknown>, path);
    }
  };
  walk(valid(), "");
  return paths;
})();

/** Values that break configs: edge numbers, wrong types, odd strings. */
const hostileValue = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    1,
    0.5,
    1.5,
    2 ** 32,
    2 ** 53,
    -(2 ** 53),
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    1e308,
    5e-324,
  ),
  fc.double(),
  fc.integer({ min: -1000, max: 1000 }),
  fc.constantFrom("", "..", "../../x", "/", "\u0000", "cosine", "skip", "true", "1e3", "constructor", "__proto__"),
  fc.string(),
  fc.constantFrom(null, true, false, [], {}, [0.9], [0.9, 0.999, 0.5], [2, 0.999]),
  fc.jsonValue(),
);

function set(config: Record<string, any>, path: string, value: unknown): Record<string, any> {
  const keys = path.split(".");
  let node = config;
  for (const key of keys.slice(0, -1)) node = node[key];
  node[keys[keys.length - 1]!] = value;
  return config;
}

/** resolveRunConfig's outcome: a config satisfying every rule, or a RunConfigError naming the file. */
function checkOutcome(raw: unknown, file: string): "accepted" | "refused" {
  let resolved: RunConfig;
  try {
    resolved = resolveRunConfig(raw, file);
  } catch (error) {
    expect(error, String(error)).toBeInstanceOf(RunConfigError);
    expect((error as Error).message.startsWith(`${file}: `)).toBe(true);
    return "refused";
  }
  expect(violations(resolved)).toEqual([]);
  return "accepted";
}

describe("run config fuzz", () => {
  it("the valid base config is accepted (the mutations start from an accepted config)", () => {
    expect(checkOutcome(valid(), "base.yaml")).toBe("accepted");
  });

  it("arbitrary JSON values: a RunConfigError or a config within range, never another error", () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.anything()), (raw) => {
        checkOutcome(raw, "any.json");
      }),
      fuzzParameters(300),
    );
  });

  it("one field of a valid config replaced by a hostile value: refused, or accepted within range", () => {
    const counts = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(fc.constantFrom(...fieldPaths), hostileValue, (path, value) => {
        counts[checkOutcome(set(valid(), path, value), "mutated.yaml")]++;
      }),
      fuzzParameters(600),
    );
    expect(counts.refused).toBeGreaterThan(0);
    console.log(
      `config fuzz, one field replaced: ${counts.refused} refused (RunConfigError), ${counts.accepted} accepted within range, 0 other`,
    );
  });

  it("two fields removed or replaced at once", () => {
    fc.assert(
      fc.property(fc.constantFrom(...fieldPaths), fc.constantFrom(...fieldPaths), hostileValue, (a, b, value) => {
        const config = set(valid(), a, value);
        try {
          set(config, b, undefined);
        } catch {
          // `b` lay under the replaced field.
        }
        checkOutcome(config, "two.yaml");
      }),
      fuzzParameters(300),
    );
  });

  describe("JSON and YAML files", () => {
    const dir = mkdtempSync(join(tmpdir(), "emlab-config-fuzz-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    let counter = 0;

    /** readRunConfig on `body` saved as `file`: a RunConfigError naming the file or a config within range. */
    const checkFile = (file: string, body: string) => {
      writeFileSync(file, body);
      let resolved: RunConfig;
      try {
        resolved = readRunConfig(file);
      } catch (error) {
        expect(error, String(error)).toBeInstanceOf(RunConfigError);
        expect((error as Error).message.startsWith(`${file}: `)).toBe(true);
        return;
      }
      expect(violations(resolved)).toEqual([]);
    };

    it("rendered mutated configs and cut or spliced JSON: readRunConfig refuses with RunConfigError or accepts within range", () => {
      const text = JSON.stringify(valid(), null, 1);
      const jsonText = fc.oneof(
        fc.tuple(fc.constantFrom(...fieldPaths), hostileValue).map(([path, value]) => JSON.stringify(set(valid(), path, value))),
        fc.nat({ max: text.length }).map((n) => text.slice(0, n)),
        fc.tuple(fc.nat({ max: text.length }), fc.string()).map(([n, s]) => text.slice(0, n) + s + text.slice(n)),
        fc.constantFrom('{"training": {"lr": NaN}}', "[]", "null", "1e999", '{"model": "m", "model": "n"}', "\uFEFF{}", ""),
      );
      fc.assert(
        fc.property(jsonText, (body) => checkFile(join(dir, `c${counter++}.json`), body)),
        fuzzParameters(200),
      );
    });

    it("rendered mutated configs and cut or spliced YAML: readRunConfig refuses with RunConfigError or accepts within range", () => {
      const text = toYaml(valid());
      const yamlText = fc.oneof(
        fc.tuple(fc.constantFrom(...fieldPaths), hostileValue).map(([path, value]) => toYaml(set(valid(), path, value))),
        fc.nat({ max: text.length }).map((n) => text.slice(0, n)),
        fc.tuple(fc.nat({ max: text.length }), fc.string()).map(([n, s]) => text.slice(0, n) + s + text.slice(n)),
        fc.constantFrom("training: { lr: .nan }", "lr: .inf", "[1, 2", "{", "\t- x", "---\n---\n", "!!binary AAAA", "a: &x [*x]", ""),
      );
      fc.assert(
        fc.property(yamlText, (body) => checkFile(join(dir, `c${counter++}.yaml`), body)),
        fuzzParameters(200),
      );
    });
  });
});
