/**
 * Analysis stages over learned solutions, each a thin adapter over src/analysis: direction
 * (mean-difference direction from judged answers, with layer-by-layer cosines), efficiency (loss vs
 * rescaled norm per solution, plus every solution on one common norm grid and the narrow - general
 * difference), stability (relative loss under orthogonal perturbations, mean and std over seeds),
 * significance (KL(chat || steered) vs norm for steering vectors and same-norm random controls) and
 * gradients (checkpoint gradients of the data loss, their cosine with the direction, and one PCA
 * of all runs' checkpoint trajectories together). Outputs are JSON files the report plots, written at
 * the end. Efficiency, stability, significance and gradients are Effect programs whose model is held in
 * their Scope and which yield to the event loop between solutions / vectors / runs (so a signal stops
 * them there; nothing is kept, the stage runs again); direction is one synchronous block.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { cosineMatrix, meanDiffDirection, splitJudged } from "../../analysis/directions.js";
import { adapterEfficiency, significance, stability, steeringEfficiency } from "../../analysis/experiments.js";
import { loadDirection, loadSteeringVector } from "../../analysis/files.js";
import { checkpointTrajectory, cosine, lossGradient, pca } from "../../analysis/gradients.js";
import { randomControl } from "../../analysis/interventions.js";
import { datasetLoss, lossSubset } from "../../analysis/loss.js";
import { adapterNorm } from "../../analysis/rescale.js";
import { ResultsFile } from "../../eval/results.js";
import { saveSafetensors } from "../../io/safetensors.js";
import { cat, keep, noGrad, type Tensor, tidy } from "../../tensor/index.js";
import { readChatDataset } from "../../train/data.js";
import { attempt } from "../../train/attempt.js";
import { SteeringVector } from "../../train/steering.js";
import type { StageOf } from "../schema.js";
import { checkSteeringRun, readTexts } from "../preflight.js";
import type { StageContext, StageFailure, StageOutcome, StageProgram } from "./context.js";
import { attachSolution, openModelWith, padIdOf, scopedOpenModel } from "./models.js";

const writeJson = (file: string, value: unknown) => writeFileSync(file, `${JSON.stringify(value, null, 1)}\n`);

export function runDirectionStage(ctx: StageContext<StageOf<"direction">>): StageOutcome {
  const s = ctx.stage;
  const rows = ResultsFile.read(ctx.inputs.results!).rows;
  const { misaligned, aligned } = splitJudged(rows, { seed: s.seed ?? 0 });
  using opened = openModelWith(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype, solution: ctx.inputs.solution ?? null });
  const out = join(ctx.dir, "direction.safetensors");
  const result = meanDiffDirection(opened.model, opened.tokenizer, misaligned, aligned, {
    batchSize: s.batch_size,
    onBatch: (d, t) => ctx.progress("activations", d, t),
  });
  try {
    saveSafetensors(
      out,
      { direction: result.direction, misaligned_mean: result.misalignedMean, aligned_mean: result.alignedMean },
      {
        misaligned: String(result.counts.misaligned),
        aligned: String(result.counts.aligned),
      },
    );
    const norms = tidy(() => Array.from(result.direction.to("f32").norm(2, -1).toArray() as Float32Array));
    const cosines: Record<string, number[][]> = { self: cosineMatrix(result.direction, result.direction) };
    for (const label of Object.keys(s.compare ?? {})) {
      const other = loadDirection(ctx.inputs[`compare.${label}`]!, ctx.device as never);
      try {
        cosines[label] = cosineMatrix(result.direction, other);
      } finally {
        other.dispose();
      }
    }
    writeJson(join(ctx.dir, "direction.json"), { counts: result.counts, norms, cosines });
    return { outputs: [out, join(ctx.dir, "direction.json")], summary: result.counts };
  } finally {
    result.direction.dispose();
    result.misalignedMean.dispose();
    result.alignedMean.dispose();
  }
}

interface SolutionsStage {
  solutions: Record<string, string>;
  count?: number;
  seed?: number;
}

/** Loads the base model once (in the program's Scope) and runs `fn` with each labelled solution attached in turn, yielding in between. */
function forEachSolution<T>(
  ctx: StageContext,
  stage: SolutionsStage,
  fn: (
    label: string,
    solution: ReturnType<typeof attachSolution>,
    loss: { subset: ReturnType<typeof lossSubset>; pad: number; model: ReturnType<typeof openModelWith>["model"] },
  ) => T,
): Effect.Effect<Record<string, T>, StageFailure> {
  return Effect.scoped(
    Effect.gen(function* () {
      const opened = yield* scopedOpenModel(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype });
      const { subset, pad } = yield* attempt(() => ({
        subset: lossSubset(opened.tokenizer, readChatDataset(ctx.inputs.data!).examples, {
          count: stage.count ?? 100,
          seed: stage.seed ?? 42,
        }),
        pad: padIdOf(opened.tokenizer, opened.model),
      }));
      const out: Record<string, T> = {};
      for (const label of Object.keys(stage.solutions)) {
        yield* Effect.yieldNow;
        out[label] = yield* attempt(() => {
          using solution = attachSolution(opened.model, ctx.inputs[`solutions.${label}`]!, `${ctx.path}.solutions.${label}`);
          return fn(label, solution, { subset, pad, model: opened.model });
        });
      }
      return out;
    }),
  );
}

export const efficiencyStage = (ctx: StageContext<StageOf<"efficiency">>): StageProgram =>
  Effect.gen(function* () {
    const s = ctx.stage;
    const curveOf = (
      solution: ReturnType<typeof attachSolution>,
      model: Parameters<typeof steeringEfficiency>[0],
      subset: Parameters<typeof steeringEfficiency>[2],
      scales: number[],
      pad: number,
    ) =>
      solution.steering
        ? steeringEfficiency(model, solution.steering, subset, scales, pad)
        : adapterEfficiency(model, solution.adapter!, subset, scales, pad);
    // Pass 1: each solution's own curve (scales of its own norm) and its norm.
    const own = yield* forEachSolution(ctx, s, (label, solution, { subset, pad, model }) => {
      const scales = [...(s.scales ?? Array.from({ length: 21 }, (_, i) => i / 10))];
      const norm = solution.steering ? tidy(() => solution.steering!.vector.norm().toNumber()) : adapterNorm(solution.adapter!);
      ctx.progress("efficiency", Object.keys(s.solutions).indexOf(label) + 1, Object.keys(s.solutions).length * 2);
      return { norm, points: curveOf(solution, model, subset, scales, pad) };
    });
    // Pass 2: every solution at the same absolute norms, {0.2, ..., 2.0} x the mean original norm.
    const meanNorm = Object.values(own).reduce((a, c) => a + c.norm, 0) / Object.keys(own).length;
    const grid = Array.from({ length: 10 }, (_, i) => 0.2 * (i + 1) * meanNorm);
    const common = yield* forEachSolution(ctx, s, (label, solution, { subset, pad, model }) => {
      const points = curveOf(
        solution,
        model,
        subset,
        grid.map((n) => n / Math.max(own[label]!.norm, 1e-30)),
        pad,
      );
      ctx.progress(
        "efficiency",
        Object.keys(s.solutions).length + Object.keys(s.solutions).indexOf(label) + 1,
        Object.keys(s.solutions).length * 2,
      );
      return points.map((p, i) => ({ norm: grid[i]!, loss: p.loss }));
    });
    const difference =
      own.general && own.narrow
        ? grid.map((norm, i) => ({ norm, narrow_minus_general: common.narrow![i]!.loss - common.general![i]!.loss }))
        : null;
    const out = join(ctx.dir, "efficiency.json");
    writeJson(out, { curves: own, common, difference });
    return {
      outputs: [out],
      summary: difference
        ? { mean_narrow_minus_general: difference.reduce((a, d) => a + d.narrow_minus_general, 0) / difference.length }
        : { solutions: Object.keys(own) },
    };
  });

export const stabilityStage = (ctx: StageContext<StageOf<"stability">>): StageProgram =>
  Effect.gen(function* () {
    const s = ctx.stage;
    const labels = Object.keys(s.solutions);
    const curves = yield* forEachSolution(ctx, s, (label, solution, { subset, pad, model }) => {
      const baseLoss = solution.off(() => datasetLoss(model, subset, { padId: pad }));
      return stability(model, solution.tensors, subset, {
        eps: s.eps ?? [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        seeds: s.seeds ?? [42, 43, 44, 45, 46, 47, 48, 49, 50, 51],
        baseLoss,
        padId: pad,
        onProgress: (d, t) => ctx.progress(`stability ${label}`, labels.indexOf(label) * t + d, labels.length * t),
      });
    });
    const out = join(ctx.dir, "stability.json");
    writeJson(out, { curves });
    return { outputs: [out], summary: Object.fromEntries(Object.entries(curves).map(([k, c]) => [k, { l0: c.l0, l_base: c.lBase }])) };
  });

export const significanceStage = (ctx: StageContext<StageOf<"significance">>): StageProgram =>
  Effect.scoped(
    Effect.gen(function* () {
      const s = ctx.stage;
      const texts = yield* attempt(() => readTexts(ctx.inputs.texts!, `${ctx.path}.texts`, s.max_texts ?? 100));
      const opened = yield* scopedOpenModel(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype });
      type Entry = { label: string; vector: Tensor; alpha: number; layer: number };
      const vectors = yield* Effect.acquireRelease(
        Effect.sync((): Entry[] => []),
        (held) => Effect.sync(() => held.forEach((v) => v.vector.dispose())),
      );
      yield* attempt(() => {
        for (const label of Object.keys(s.vectors)) {
          const sv = loadSteeringVector(ctx.inputs[`vectors.${label}`]!, opened.model.decoder);
          vectors.push({ label, vector: sv.vector, alpha: s.alpha ?? sv.alpha, layer: s.layer ?? sv.layer });
        }
        const reference = vectors[0]!;
        // Random controls: Gaussian vectors with the first vector's norm, treated like it (same alpha and layer).
        for (let i = 0; i < (s.random ?? 3); i++)
          vectors.push({
            label: `random-${i}`,
            vector: keep(randomControl(reference.vector, 42 + i)),
            alpha: reference.alpha,
            layer: reference.layer,
          });
      });
      const norms = s.norms ?? Array.from({ length: 26 }, (_, i) => i / 5);
      const points: ReturnType<typeof significance> = [];
      // One vector's curve between two turns of the event loop.
      for (const [k, v] of vectors.entries()) {
        yield* Effect.yieldNow;
        points.push(
          ...(yield* attempt(() =>
            significance(opened.model, opened.tokenizer, texts, [{ label: v.label, vector: v.vector }], {
              layer: v.layer,
              alpha: v.alpha,
              norms,
              includePads: s.include_pads ?? false,
              onProgress: (d, t) => ctx.progress("significance", k * t + d, vectors.length * t),
            }),
          )),
        );
      }
      const out = join(ctx.dir, "significance.json");
      writeJson(out, { texts: texts.length, vectors: vectors.map((v) => ({ label: v.label, alpha: v.alpha, layer: v.layer })), points });
      return { outputs: [out], summary: { texts: texts.length, vectors: vectors.length } };
    }),
  );

export const gradientsStage = (ctx: StageContext<StageOf<"gradients">>): StageProgram =>
  Effect.scoped(
    Effect.gen(function* () {
      const s = ctx.stage;
      const opened = yield* scopedOpenModel(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype });
      const directions = ctx.inputs.directions
        ? yield* Effect.acquireRelease(
            attempt(() => loadDirection(ctx.inputs.directions!, ctx.device as never)),
            (d) => Effect.sync(() => d.dispose()),
          )
        : null;
      const trajectories = yield* Effect.acquireRelease(
        Effect.sync((): { label: string; steps: number[]; points: Tensor }[] => []),
        (held) => Effect.sync(() => held.forEach((t) => t.points.dispose())),
      );
      const { subset, pad } = yield* attempt(() => ({
        subset: lossSubset(opened.tokenizer, readChatDataset(ctx.inputs.data!).examples, { count: s.count ?? 100, seed: 42 }),
        pad: padIdOf(opened.tokenizer, opened.model),
      }));
      const runs: Record<string, { steps: number[]; grad_norm: number[]; cosine_with_direction: number[] | null; pca: number[][] }> = {};
      // One run's checkpoints between two turns of the event loop.
      for (const label of Object.keys(s.runs)) {
        yield* Effect.yieldNow;
        runs[label] = yield* attempt(() => {
          const runDir = ctx.inputs[`runs.${label}`]!;
          const steering = checkSteeringRun(runDir, `${ctx.path}.runs.${label}`);
          const trajectory = checkpointTrajectory(runDir);
          trajectories.push({ label, ...trajectory });
          const sv = SteeringVector.create(opened.model.decoder, steering.layer, { site: steering.site, alpha: steering.alpha });
          const handle = sv.attach(opened.model.decoder);
          const gradNorms: number[] = [];
          const cosines: number[] = [];
          try {
            trajectory.steps.forEach((_, i) => {
              noGrad(() => tidy(() => void sv.vector.copy_(trajectory.points.select(0, i).to("f32"))));
              const [grad] = lossGradient(opened.model, [sv.vector], subset, { padId: pad });
              gradNorms.push(tidy(() => grad!.norm().toNumber()));
              if (directions) cosines.push(tidy(() => cosine(grad!, directions.ndim === 2 ? directions.select(0, sv.layer) : directions)));
              grad!.dispose();
              ctx.progress(`gradients ${label}`, i + 1, trajectory.steps.length);
            });
          } finally {
            handle.remove();
            sv.dispose();
          }
          return {
            steps: trajectory.steps,
            grad_norm: gradNorms,
            cosine_with_direction: directions ? cosines : null,
            pca: [] as number[][],
          };
        });
      }
      // One PCA space for all runs (the study fits general and narrow trajectories together).
      const { projections, explained } = yield* attempt(() => {
        const all = keep(
          tidy(() =>
            cat(
              trajectories.map((t) => t.points),
              0,
            ),
          ),
        );
        try {
          return pca(all, 3);
        } finally {
          all.dispose();
        }
      });
      let offset = 0;
      for (const t of trajectories) {
        runs[t.label]!.pca = t.steps.map((_, i) => projections.map((component) => component[offset + i]!));
        offset += t.steps.length;
      }
      const out = join(ctx.dir, "gradients.json");
      writeJson(out, { runs, explained });
      return { outputs: [out], summary: { explained } };
    }),
  );
