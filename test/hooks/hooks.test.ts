// Hook points and interventions on the tiny Hugging Face fixtures (qwen2, gemma2): captures equal HF's hidden
// states, add/remove/withHooks/hookScope lifetimes, projecting a direction out, steering that cancels, the
// down_proj / mlp_out / resid_post site equivalences, gradient capture, point validation and hooks in generate().
import { join } from "node:path";
import { Effect } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate } from "../../src/generate/generate.js";
import { addHook, captureHook, gradientHook, projectOutHook } from "../../src/hooks/interventions.js";
import type { HookPoint } from "../../src/hooks/points.js";
import type { HookFn } from "../../src/hooks/registry.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import { type Tensor, tensor, tidy } from "../../src/tensor/index.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { expectClose, seededValues, values } from "../helpers/numeric.js";

const MODELS = join(import.meta.dirname, "..", "fixtures", "hf", "models");

interface Fixture {
  model: LoadedModel;
  expected: Map<string, Tensor>;
}

function openFixture(family: string): Fixture {
  const model = loadModel(join(MODELS, family));
  const { tensors } = loadSafetensors(join(MODELS, family, "expected.safetensors"));
  return { model, expected: tensors };
}

function closeFixture(f: Fixture | undefined): void {
  if (!f) return;
  f.model.dispose();
  for (const t of f.expected.values()) t.dispose();
}

const ints = (t: Tensor): number[][] => (t.toList() as bigint[][]).map((row) => row.map(Number));

/** A deterministic float32 vector of d_model entries (not from libtorch's RNG). */
const vectorOf = (size: number, seed: number, scale = 1): Tensor =>
  tensor(
    Float32Array.from(seededValues(size, seed), (v) => v * scale),
    { shape: [size] },
  );

const maxAbsDiff = (a: readonly number[], b: readonly number[]): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Rows of the last dimension of a flat [..., d] array. */
const rowsOf = (flat: readonly number[], d: number): number[][] =>
  Array.from({ length: flat.length / d }, (_, r) => flat.slice(r * d, (r + 1) * d));
const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: readonly number[]): number => Math.sqrt(dot(a, a));

describe.each(["qwen2", "gemma2"])("hooks on the tiny %s", (family) => {
  useLeakCheck();
  let f: Fixture;
  let d = 0;
  /** Unhooked logits of `input_ids`, host copy. */
  let base: number[] = [];

  beforeAll(() => {
    f = openFixture(family);
    d = f.model.spec.hiddenSize;
    base = logits();
  });
  afterAll(() => closeFixture(f));

  /** Logits of the fixture's input_ids [2, 16] with whatever hooks are attached. */
  function logits(): number[] {
    return tidy(() => values(f.model.decoder.forward(f.expected.get("input_ids")!).logits!));
  }

  /** Logits with `hooks` attached for one forward pass. */
  function logitsWith(hooks: readonly (readonly [HookPoint, HookFn])[]): number[] {
    return f.model.decoder.hooks.withHooks(hooks, logits);
  }

  it("captures embed and blocks.0.resid_post equal to HF hidden_states.0 and .1; resid_pre of layer 1 is resid_post of layer 0", () => {
    const embed: Tensor[] = [];
    const post0: Tensor[] = [];
    const pre1: Tensor[] = [];
    try {
      logitsWith([
        ["embed", captureHook(embed)],
        ["blocks.0.resid_post", captureHook(post0)],
        ["blocks.1.resid_pre", captureHook(pre1)],
      ]);
      expect(embed.length).toBe(1);
      expect(post0.length).toBe(1);
      expect(pre1.length).toBe(1);
      expect(embed[0]!.shape).toEqual([2, 16, d]);
      expectClose(values(embed[0]!), values(f.expected.get("hidden_states.0")!), 1e-5);
      expectClose(values(post0[0]!), values(f.expected.get("hidden_states.1")!), 1e-5);
      expect(values(pre1[0]!)).toEqual(values(post0[0]!));
    } finally {
      for (const t of [...embed, ...post0, ...pre1]) t.dispose();
    }
    expect(f.model.decoder.hooks.size).toBe(0);
  });

  it("captures final_norm equal to HF's last hidden state (after the final norm)", () => {
    const captured: Tensor[] = [];
    try {
      logitsWith([["final_norm", captureHook(captured)]]);
      expect(captured.length).toBe(1);
      expectClose(values(captured[0]!), values(f.expected.get("hidden_states.2")!), 1e-5);
    } finally {
      for (const t of captured) t.dispose();
    }
  });

  it("addHook changes the logits and removing its handle restores them exactly", () => {
    // Sanity: the unhooked forward reproduces HF's logits, so `base` is the true baseline.
    expectClose(base, values(f.expected.get("logits")!), 1e-4);
    const v = vectorOf(d, 11);
    try {
      const handle = f.model.decoder.hooks.add("blocks.0.resid_post", addHook(v));
      let hooked: number[];
      try {
        expect(f.model.decoder.hooks.size).toBe(1);
        hooked = logits();
      } finally {
        handle.remove();
      }
      expect(maxAbsDiff(hooked, base)).toBeGreaterThan(1e-3);
      expect(f.model.decoder.hooks.size).toBe(0);
      expect(logits()).toEqual(base);
      // A second remove() is harmless.
      handle.remove();
      expect(logits()).toEqual(base);
    } finally {
      v.dispose();
    }
  });

  it("withHooks detaches its hooks also when the function throws", () => {
    const v = vectorOf(d, 12);
    let inside: number[] = [];
    try {
      expect(() =>
        f.model.decoder.hooks.withHooks([["blocks.0.resid_post", addHook(v)]], () => {
          inside = logits();
          throw new RangeError("boom");
        }),
      ).toThrow(RangeError);
      expect(maxAbsDiff(inside, base)).toBeGreaterThan(1e-3);
      expect(f.model.decoder.hooks.size).toBe(0);
      expect(logits()).toEqual(base);
    } finally {
      v.dispose();
    }
  });

  it("hookScope attaches for the Effect scope and detaches when it ends", async () => {
    const v = vectorOf(d, 13);
    try {
      const hooks = f.model.decoder.hooks;
      const inside = await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            yield* hooks.hookScope("blocks.0.resid_post", addHook(v));
            return { size: hooks.size, logits: logits() };
          }),
        ),
      );
      expect(inside.size).toBe(1);
      expect(maxAbsDiff(inside.logits, base)).toBeGreaterThan(1e-3);
      expect(hooks.size).toBe(0);
      expect(logits()).toEqual(base);

      // Also on failure: the scope still closes and removes the hook.
      const failed = await Effect.runPromiseExit(
        Effect.scoped(
          Effect.gen(function* () {
            yield* hooks.hookScope("blocks.0.resid_post", addHook(v));
            return yield* Effect.fail("stop" as const);
          }),
        ),
      );
      expect(failed._tag).toBe("Failure");
      expect(hooks.size).toBe(0);
      expect(logits()).toEqual(base);
    } finally {
      v.dispose();
    }
  });

  it.each(["blocks.0.resid_post", "blocks.1.attn_out"] as const)(
    "projectOutHook at %s leaves no component along the direction",
    (point) => {
      const direction = vectorOf(d, 21, 3);
      const before: Tensor[] = [];
      const after: Tensor[] = [];
      try {
        logitsWith([
          [point, captureHook(before)],
          [point, projectOutHook(direction)],
          [point, captureHook(after)],
        ]);
        const unit = values(direction).map((x, _, all) => x / norm(all));
        const xs = rowsOf(values(before[0]!), d);
        const ys = rowsOf(values(after[0]!), d);
        expect(ys.length).toBe(2 * 16);
        // The raw activation does have a component along d (so the check below is not vacuous)...
        expect(Math.max(...xs.map((x) => Math.abs(dot(x, unit)) / norm(x)))).toBeGreaterThan(1e-2);
        ys.forEach((y, r) => {
          // ...the projected one has none,
          expect(Math.abs(dot(y, unit))).toBeLessThanOrEqual(1e-6 * norm(y));
          // and it is x - (x . d_hat) d_hat, computed here in float64.
          const x = xs[r]!;
          const c = dot(x, unit);
          expectClose(
            y,
            x.map((xi, i) => xi - c * unit[i]!),
            1e-5,
          );
        });
      } finally {
        for (const t of [...before, ...after, direction]) t.dispose();
      }
    },
  );

  it("steering by +v then by -v at the same point restores the logits", () => {
    const v = vectorOf(d, 31, 4);
    try {
      const plus = logitsWith([["blocks.0.resid_mid", addHook(v)]]);
      expect(maxAbsDiff(plus, base)).toBeGreaterThan(1e-2);
      const both = logitsWith([
        ["blocks.0.resid_mid", addHook(v)],
        ["blocks.0.resid_mid", addHook(v, -1)],
      ]);
      expectClose(both, base, 1e-5);
    } finally {
      v.dispose();
    }
  });

  it("adding v at blocks.1.mlp_out equals adding it at blocks.1.resid_post", () => {
    const v = vectorOf(d, 41, 2);
    try {
      const atMlpOut = logitsWith([["blocks.1.mlp_out", addHook(v)]]);
      const atResidPost = logitsWith([["blocks.1.resid_post", addHook(v)]]);
      expect(maxAbsDiff(atMlpOut, base)).toBeGreaterThan(1e-2);
      expectClose(atMlpOut, atResidPost, 1e-5);
    } finally {
      v.dispose();
    }
  });

  it("gradientHook keeps activations whose .grad is filled by backward", () => {
    const weight = f.model.parameters.get("model.embed_tokens.weight")!;
    const post0: Tensor[] = [];
    const final: Tensor[] = [];
    weight.requiresGrad_(true);
    try {
      const result = tidy(() => {
        const hooks: [HookPoint, HookFn][] = [
          ["blocks.0.resid_post", gradientHook(post0)],
          ["final_norm", gradientHook(final)],
        ];
        const out = f.model.decoder.hooks.withHooks(hooks, () => f.model.decoder.forward(f.expected.get("input_ids")!).logits!);
        out.sum().backward();
        const g0 = post0[0]!.grad;
        const gf = final[0]!.grad;
        // d(sum logits)/d(final) in closed form: (1 - (logits / c)^2) @ W with soft-capping at c, else ones @ W.
        const cap = f.model.spec.finalSoftcap;
        const outer = cap === null ? out.mul(0).add(1) : out.div(cap).square().rsub(1);
        const expectedFinal = outer.detach().matmul(f.model.decoder.weights.lmHead);
        return {
          post0Shape: g0?.shape ?? null,
          post0Norm: g0 === null ? 0 : g0.norm().toNumber(),
          finalShape: gf?.shape ?? null,
          finalGrad: gf === null ? [] : values(gf),
          expectedFinal: values(expectedFinal),
        };
      });
      expect(post0.length).toBe(1);
      expect(result.post0Shape).toEqual([2, 16, d]);
      expect(result.post0Norm).toBeGreaterThan(0);
      expect(result.finalShape).toEqual([2, 16, d]);
      expectClose(result.finalGrad, result.expectedFinal, 1e-4);
    } finally {
      for (const t of [...post0, ...final]) t.dispose();
      weight.grad = null;
      weight.requiresGrad_(false);
    }
  });

  it("an unknown hook point throws TypeError and attaches nothing", () => {
    const hooks = f.model.decoder.hooks;
    const observe: HookFn = () => undefined;
    for (const bad of [
      "blocks.2.resid_post",
      "blocks.0.attn",
      "blocks.0.resid_post.x",
      "embeds",
      "blocks.-1.resid_pre",
      "layers.0.resid_pre",
      "",
    ]) {
      expect(() => hooks.add(bad as HookPoint, observe), bad).toThrow(TypeError);
      expect(hooks.size).toBe(0);
    }
    // The last layer's points are valid (so the rejections above are about the names).
    hooks.add("blocks.1.resid_pre", observe).remove();
    expect(hooks.size).toBe(0);
  });

  it("a hook that returns nothing only observes", () => {
    const seen: number[][] = [];
    const observed = logitsWith([
      [
        "blocks.0.attn_out",
        (x, context) => {
          seen.push([...x.shape, context.layer]);
        },
      ],
    ]);
    expect(seen).toEqual([[2, 16, d, 0]]);
    expect(observed).toEqual(base);
  });
});

describe("down_proj vs mlp_out vs resid_post", () => {
  useLeakCheck();
  let qwen2: Fixture;
  let gemma2: Fixture;
  beforeAll(() => {
    qwen2 = openFixture("qwen2");
    gemma2 = openFixture("gemma2");
  });
  afterAll(() => {
    closeFixture(qwen2);
    closeFixture(gemma2);
  });

  const logitsAt = (fx: Fixture, point: HookPoint | null, v: Tensor): number[] =>
    fx.model.decoder.hooks.withHooks(point === null ? [] : [[point, addHook(v)]], () =>
      tidy(() => values(fx.model.decoder.forward(fx.expected.get("input_ids")!).logits!)),
    );

  it("qwen2: adding v at blocks.1.down_proj equals adding it at mlp_out and at resid_post", () => {
    const v = vectorOf(64, 51, 2);
    try {
      const base = logitsAt(qwen2, null, v);
      const down = logitsAt(qwen2, "blocks.1.down_proj", v);
      expect(maxAbsDiff(down, base)).toBeGreaterThan(1e-2);
      expectClose(down, logitsAt(qwen2, "blocks.1.mlp_out", v), 1e-5);
      expectClose(down, logitsAt(qwen2, "blocks.1.resid_post", v), 1e-5);
    } finally {
      v.dispose();
    }
  });

  it("gemma2: adding v at blocks.1.down_proj differs from adding it at mlp_out (post-feedforward norm between)", () => {
    const v = vectorOf(64, 51, 2);
    try {
      const base = logitsAt(gemma2, null, v);
      const down = logitsAt(gemma2, "blocks.1.down_proj", v);
      const mlpOut = logitsAt(gemma2, "blocks.1.mlp_out", v);
      expect(maxAbsDiff(down, base)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(mlpOut, base)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(down, mlpOut)).toBeGreaterThan(1e-3);
      expectClose(mlpOut, logitsAt(gemma2, "blocks.1.resid_post", v), 1e-5);
    } finally {
      v.dispose();
    }
  });
});

describe("hooks during generate (qwen2)", () => {
  useLeakCheck();
  let fx: Fixture;
  beforeAll(() => {
    fx = openFixture("qwen2");
  });
  afterAll(() => closeFixture(fx));

  it("an addHook with a large vector changes the greedy tokens, in prefill and in every decode step", () => {
    const prompt = ints(fx.expected.get("greedy.input_ids")!);
    const reference = ints(fx.expected.get("greedy.output_ids")!);
    const options = { greedy: true, maxNewTokens: 8, padTokenId: 0 } as const;
    const plain = generate(fx.model.decoder, prompt, null, options);
    expect(plain.outputIds).toEqual(reference);

    const v = vectorOf(64, 61, 50);
    const shapes: number[][] = [];
    try {
      const steered = fx.model.decoder.hooks.withHooks(
        [
          ["blocks.1.resid_post", addHook(v)],
          ["blocks.1.resid_post", (x) => void shapes.push(x.shape)],
        ],
        () => generate(fx.model.decoder, prompt, null, options),
      );
      expect(steered.outputIds.map((r) => r.slice(0, 8))).toEqual(prompt);
      steered.newIds.forEach((ids, row) => {
        const unhooked = reference[row]!.slice(8);
        expect(ids.length).toBe(8);
        expect(ids).not.toEqual(unhooked);
        // Each step is steered: no generated token agrees with the unhooked continuation.
        ids.forEach((t, i) => expect(t, `row ${row} step ${i}`).not.toBe(unhooked[i]));
      });
      expect(shapes[0]).toEqual([2, 8, 64]);
      expect(shapes.length).toBeGreaterThanOrEqual(8);
      for (const s of shapes.slice(1)) expect(s).toEqual([2, 1, 64]);
    } finally {
      v.dispose();
    }
    expect(fx.model.decoder.hooks.size).toBe(0);
    expect(generate(fx.model.decoder, prompt, null, options).outputIds).toEqual(reference);
  });
});
