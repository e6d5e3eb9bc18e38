/**
 * Live misalignment monitor: while generating, project each new token's activation at a layer onto a
 * direction, stream (token, projection) as it goes, raise an alarm when the projection crosses a
 * threshold, and optionally ablate the direction on-line from then on. While ablating, the reported
 * projection is the one after ablation (what the rest of the model sees), and the event says so.
 */
import { generate, type GenerateOptions } from "../generate/generate.js";
import { projectOutHook } from "../hooks/interventions.js";
import { layerPoint } from "../hooks/points.js";
import type { HookHandle } from "../hooks/registry.js";
import type { Decoder } from "../nn/decoder.js";
import { keep, type Tensor, tidy } from "../tensor/index.js";
import { checkDirectionValues } from "./files.js";

export interface MonitorEvent {
  step: number;
  row: number;
  token: number;
  projection: number;
  alarm: boolean;
  /** The direction was being projected out when this token's activation was measured. */
  ablated: boolean;
}

export interface MonitorOptions extends GenerateOptions {
  layer: number;
  direction: Tensor;
  threshold: number;
  /** Project the direction out at the layer once a row has alarmed (for every row: one shared hook). */
  ablateOnAlarm?: boolean;
  onEvent?: (event: MonitorEvent) => void;
}

/** Generates with the monitor; returns the generation and every event. */
export function monitorGeneration(
  decoder: Decoder,
  prompts: readonly (readonly number[])[],
  mask: readonly (readonly number[])[] | null,
  options: MonitorOptions,
) {
  checkDirectionValues(options.direction, "monitor direction");
  if (Number.isNaN(options.threshold)) throw new RangeError("monitor: threshold is NaN (it would never alarm)");
  const unit = keep(tidy(() => options.direction.to("f32").div(options.direction.to("f32").norm().clamp(1e-30))));
  const events: MonitorEvent[] = [];
  let latest: number[] = [];
  let latestAblated = false;
  let ablating = false;
  const ablation = projectOutHook(unit);
  // One hook: ablate first (once alarmed), then measure what flows on.
  const probe: HookHandle = decoder.hooks.add(layerPoint(options.layer, "resid_post"), (x) => {
    const out = ablating ? (ablation(x, { point: layerPoint(options.layer, "resid_post"), layer: options.layer }) as Tensor) : x;
    // Projection of the last position of every row (the token being generated from).
    latest = tidy(() =>
      Array.from(
        out
          .select(1, out.size(1) - 1)
          .to("f32")
          .matmul(unit.to(out.device))
          .toArray() as Float32Array,
      ),
    );
    latestAblated = ablating;
    return ablating ? out : undefined;
  });
  let step = 0;
  try {
    const result = generate(decoder, prompts, mask, {
      ...options,
      onStep: (tokens, s) => {
        step = s;
        tokens.forEach((token, row) => {
          const projection = latest[row] ?? Number.NaN;
          const alarm = projection > options.threshold;
          const event = { step, row, token, projection, alarm, ablated: latestAblated };
          events.push(event);
          options.onEvent?.(event);
          if (alarm && options.ablateOnAlarm) ablating = true;
        });
        options.onStep?.(tokens, s);
      },
    });
    return { result, events, ablated: ablating };
  } finally {
    probe.remove();
    unit.dispose();
  }
}
