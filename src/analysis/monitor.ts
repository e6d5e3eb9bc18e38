/**
 * Live misalignment monitor: while generating, project each new token's activation at a layer onto a
 * direction, stream (token, projection) as it goes, raise an alarm when the projection crosses a
 * threshold, and optionally ablate the direction on-line from then on.
 */
import { generate, type GenerateOptions } from "../generate/generate.js";
import { projectOutHook } from "../hooks/interventions.js";
import { layerPoint } from "../hooks/points.js";
import type { HookHandle } from "../hooks/registry.js";
import type { Decoder } from "../nn/decoder.js";
import { keep, type Tensor, tidy } from "../tensor/index.js";

export interface MonitorEvent {
  step: number;
  row: number;
  token: number;
  projection: number;
  alarm: boolean;
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
export function monitorGeneration(decoder: Decoder, prompts: readonly (readonly number[])[], mask: readonly (readonly number[])[] | null, options: MonitorOptions) {
  const unit = keep(tidy(() => options.direction.to("f32").div(options.direction.to("f32").norm().clamp(1e-30))));
  const events: MonitorEvent[] = [];
  let latest: number[] = [];
  let ablation: HookHandle | null = null;
  const probe = decoder.hooks.add(layerPoint(options.layer, "resid_post"), (x) => {
    // Projection of the last position of every row (the token being generated from).
    latest = tidy(() => Array.from(x.select(1, x.size(1) - 1).to("f32").matmul(unit.to(x.device)).toArray() as Float32Array));
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
          const event = { step, row, token, projection, alarm };
          events.push(event);
          options.onEvent?.(event);
          if (alarm && options.ablateOnAlarm && ablation === null) ablation = decoder.hooks.add(layerPoint(options.layer, "resid_post"), projectOutHook(unit));
        });
        options.onStep?.(tokens, s);
      },
    });
    return { result, events, ablated: ablation !== null };
  } finally {
    probe.remove();
    (ablation as HookHandle | null)?.remove();
    unit.dispose();
  }
}
