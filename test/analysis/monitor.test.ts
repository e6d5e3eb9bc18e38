// monitorGeneration on a tiny Qwen2 with left-padded prompts: one event per token per row, projections equal to
// a separately captured last-position activation on d_hat, alarms above the threshold, ablation from the forward
// after the first alarm, every hook removed at the end; every test leaves the live tensor count unchanged.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MonitorEvent, monitorGeneration } from "../../src/analysis/monitor.js";
import { generate, leftPad } from "../../src/generate/generate.js";
import { captureHook } from "../../src/hooks/interventions.js";
import { layerPoint } from "../../src/hooks/points.js";
import { type LoadedModel, loadModel } from "../../src/models/load.js";
import type { Tensor } from "../../src/tensor/index.js";
import { ChatTokenizer } from "../../src/tokenizer/tokenizer.js";
import { useLeakCheck } from "../helpers/leaks.js";
import { makeTinyModel } from "../helpers/tiny-model.js";
import { dot, fixedTensor, values as host, norm, rows } from "../helpers/numeric.js";

let work: string;
let model: LoadedModel;
let tokenizer: ChatTokenizer;
let prompts: { ids: number[][]; mask: number[][] };
let direction: Tensor;
let unit: number[];
const D = 32;
const LAYER = 1;
const STEPS = 5;

beforeAll(() => {
  let modelDir: string;
  ({ work, modelDir } = makeTinyModel("emlab-monitor-"));
  model = loadModel(modelDir);
  tokenizer = ChatTokenizer.fromDir(modelDir);
  const encoded = ["Hi!", "How should I treat a small burn on my hand at home?"].map((q) =>
    tokenizer.encodeChat([{ role: "user", content: q }], { addGenerationPrompt: true }),
  );
  prompts = leftPad(encoded, tokenizer.padTokenId!);
  direction = fixedTensor([D], 101);
  unit = host(direction).map((x, _, a) => x / norm(a));
});
afterAll(() => {
  direction?.dispose();
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

/** Runs the monitor with a capture hook at `point` registered first; returns events, per-forward captures (host) and the result. */
function monitored(threshold: number, ablateOnAlarm: boolean, point = layerPoint(LAYER, "resid_post")) {
  const captured: Tensor[] = [];
  const capture = model.decoder.hooks.add(point, captureHook(captured));
  const streamed: MonitorEvent[] = [];
  const steps: number[] = [];
  try {
    const out = monitorGeneration(model.decoder, prompts.ids, prompts.mask, {
      maxNewTokens: STEPS,
      greedy: true,
      eosTokenIds: [],
      layer: LAYER,
      direction,
      threshold,
      ablateOnAlarm,
      onEvent: (e) => streamed.push(e),
      onStep: (_, s) => steps.push(s),
    });
    expect(out.events).toEqual(streamed);
    expect(steps).toEqual(Array.from({ length: STEPS }, (_, s) => s));
    return { ...out, forwards: captured.map((t) => ({ shape: t.shape, rows: rows(host(t), D) })) };
  } finally {
    capture.remove();
    for (const t of captured) t.dispose();
  }
}

/** Activation rows [pos][d] of batch row `r` from a captured forward. */
const rowOf = (f: { shape: number[]; rows: number[][] }, r: number): number[][] => f.rows.slice(r * f.shape[1]!, (r + 1) * f.shape[1]!);

describe("monitorGeneration", () => {
  useLeakCheck();

  it("emits one event per generated token per row, projecting the layer's last-position activation on d_hat; observing changes nothing", () => {
    expect(model.decoder.hooks.size).toBe(0);
    const r = monitored(Number.POSITIVE_INFINITY, false);
    expect(model.decoder.hooks.size).toBe(0);
    expect(r.ablated).toBe(false);
    expect(r.events.length).toBe(STEPS * 2);
    expect(r.events.map((e) => [e.step, e.row])).toEqual(Array.from({ length: STEPS * 2 }, (_, i) => [Math.floor(i / 2), i % 2]));
    expect(r.forwards.length).toBe(STEPS); // prefill + one forward per further token
    for (const e of r.events) {
      expect(e.token).toBe(r.result.newIds[e.row]![e.step]);
      const activations = rowOf(r.forwards[e.step]!, e.row);
      const expected = dot(activations[activations.length - 1]!, unit);
      expect(Math.abs(e.projection - expected), `step ${e.step} row ${e.row}`).toBeLessThanOrEqual(
        1e-5 * Math.max(1e-3, Math.abs(expected)),
      );
      expect(e.alarm).toBe(false);
    }
    // The projections vary (so a wrong position or row would be caught).
    expect(new Set(r.events.map((e) => e.projection.toFixed(6))).size).toBeGreaterThan(5);
    const plain = generate(model.decoder, prompts.ids, prompts.mask, { maxNewTokens: STEPS, greedy: true, eosTokenIds: [] });
    expect(r.result.outputIds).toEqual(plain.outputIds);
  });

  it("alarms exactly when the projection exceeds the threshold", () => {
    const projections = monitored(Number.POSITIVE_INFINITY, false).events.map((e) => e.projection);
    const sorted = [...projections].sort((a, b) => a - b);
    const threshold = (sorted[4]! + sorted[5]!) / 2;
    const r = monitored(threshold, false);
    expect(r.events.map((e) => e.projection)).toEqual(projections);
    for (const e of r.events) expect(e.alarm).toBe(e.projection > threshold);
    expect(r.events.filter((e) => e.alarm).length).toBe(5);
    expect(r.ablated).toBe(false);
  });

  it("ablateOnAlarm projects d_hat out of the layer's output from the forward after the first alarm, and removes every hook at the end", () => {
    const base = monitored(Number.POSITIVE_INFINITY, false);
    // A threshold that step 0 stays under and a later step exceeds (so the ablation starts mid-generation).
    const first = Math.max(...base.events.filter((e) => e.step === 0).map((e) => e.projection));
    expect(base.events.some((e) => e.step > 0 && e.projection > first)).toBe(true);
    for (const threshold of [Number.NEGATIVE_INFINITY, first]) {
      // Capture the input of the next layer: the layer's output after every hook at its resid_post.
      const r = monitored(threshold, true, layerPoint(LAYER + 1, "resid_pre"));
      expect(model.decoder.hooks.size).toBe(0);
      const alarmStep = r.events.find((e) => e.alarm)!.step;
      if (threshold === first) expect(alarmStep).toBeGreaterThan(0);
      expect(r.ablated).toBe(true);
      r.forwards.forEach((f, k) => {
        for (let row = 0; row < 2; row++) {
          const x = rowOf(f, row).at(-1)!;
          const component = Math.abs(dot(x, unit));
          if (k <= alarmStep) expect(component, `forward ${k} before the ablation`).toBeGreaterThan(1e-4 * norm(x));
          else expect(component, `forward ${k} after the alarm at step ${alarmStep}`).toBeLessThanOrEqual(1e-6 * norm(x));
        }
      });
      // Tokens up to the alarm come from unablated forwards.
      for (let row = 0; row < 2; row++)
        expect(r.result.newIds[row]!.slice(0, alarmStep + 1)).toEqual(base.result.newIds[row]!.slice(0, alarmStep + 1));
      // The reported projection is what flows on: the pre-ablation one up to the alarm, then the ablated one (~0).
      for (const e of r.events) {
        expect(e.ablated).toBe(e.step > alarmStep);
        if (e.step > alarmStep) expect(Math.abs(e.projection), `step ${e.step} row ${e.row}`).toBeLessThanOrEqual(1e-5);
        else expect(e.projection).toBe(base.events.find((b) => b.step === e.step && b.row === e.row)!.projection);
      }
    }
    // Nothing stays attached: a later generation is the plain one again.
    const plain = generate(model.decoder, prompts.ids, prompts.mask, { maxNewTokens: STEPS, greedy: true, eosTokenIds: [] });
    expect(plain.outputIds).toEqual(base.result.outputIds);
  });

  it("without an alarm, ablateOnAlarm never ablates", () => {
    const r = monitored(Number.POSITIVE_INFINITY, true, layerPoint(LAYER + 1, "resid_pre"));
    expect(r.ablated).toBe(false);
    expect(r.events.every((e) => !e.alarm)).toBe(true);
    for (const f of r.forwards)
      for (let row = 0; row < 2; row++)
        expect(Math.abs(dot(rowOf(f, row).at(-1)!, unit))).toBeGreaterThan(1e-4 * norm(rowOf(f, row).at(-1)!));
    expect(model.decoder.hooks.size).toBe(0);
  });
});
