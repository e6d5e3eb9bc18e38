/**
 * The training recipe behind `emlab train CONFIG`: one straight-line program from a resolved run
 * config to a run directory. Set-up (model, method, data, optimizer, resume) -> loop (micro-batches,
 * optional per-layer gradient checkpointing, KL penalty against the model with the method switched off
 * or a frozen copy for full SFT, custom terms, clipping, AdamW, schedule, metrics, checkpoints, early
 * stop) -> final artefact (PEFT adapter, steering vector or full weights) -> clean-up.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { LoraAdapter } from "../adapters/lora.js";
import { savePeftAdapter } from "../adapters/peft.js";
import { makeOutputDir, pathInside, writeOutputFile } from "../io/output.js";
import { saveSafetensors } from "../io/safetensors.js";
import { datasetLoss } from "../analysis/loss.js";
import { type LoadedModel, loadModel } from "../models/load.js";
import { causalLmLoss } from "../nn/losses.js";
import { AdamW, clipGradNorm } from "../optim/index.js";
import { type Device, enableGrad, getRngState, manualSeed, noGrad, type Tensor, tidy } from "../tensor/index.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import { checkpointDir, latestCheckpoint, loadCheckpoint, readCheckpointPosition, removeStaleCheckpointTemporaries, saveCheckpoint, type TrainerPosition } from "../train/checkpoint.js";
import type { RunConfig } from "../train/config.js";
import { type Batch, collate, epochBatches, type Example, heldOutSplit, readChatDataset, tokenizeExample } from "../train/data.js";
import { assertLabelledBatches, NonFiniteStepError, nonFiniteIn } from "../train/guards.js";
import { klPenalty, type LossTerm } from "../train/losses.js";
import { MasterWeights } from "../train/master-weights.js";
import { MetricsLog } from "../train/metrics-log.js";
import { initLoraFrom, initSteeringFrom } from "../train/init-from.js";
import { snapshotGradients } from "../train/gradient-snapshot.js";
import { ceFactor, klFactor, lossTargets } from "../train/objective.js";
import { lrMultiplier } from "../train/schedule.js";
import { SteeringVector } from "../train/steering.js";
import { backwardThrough, capturedPoints, checkRunInputs, type TrainerCallbacks, type TrainerModel, type TrainerState } from "../train/trainer.js";

export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  ce: number;
  kl: number | null;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  terms?: Record<string, number>;
  eval_loss?: number;
  /** Set when the step's update was dropped (training.on_nonfinite: skip). */
  skipped?: string;
}

export interface TrainRunOptions {
  resume?: boolean;
  /** Extra loss terms (library users); their hook points are captured on every training forward. */
  lossTerms?: readonly LossTerm[];
  /** An already loaded model (tokenizer, adapters) to train instead of loading `config.model`; the caller keeps ownership. */
  model?: TrainerModel;
  /** Lifecycle callbacks (src/train/trainer.ts). */
  callbacks?: TrainerCallbacks;
  onStep?: (metrics: StepMetrics, totalSteps: number) => void;
  log?: (line: string) => void;
}

export interface TrainRunResult {
  outputDir: string;
  steps: number;
  finalLoss: number;
  stoppedEarly: boolean;
  artefact: string;
  /** True when `resume` found the run already finished: nothing was trained or written. */
  alreadyFinished?: boolean;
}

export function runTraining(config: RunConfig, options: TrainRunOptions = {}): TrainRunResult {
  const log = options.log ?? (() => {});
  const t = config.training;
  const out = config.output_dir;
  checkRunInputs(config, { modelProvided: options.model !== undefined });
  const resolvedFile = join(out, "config.resolved.json");
  const resolved = `${JSON.stringify(config, null, 2)}\n`;
  const checkpoint = options.resume ? latestCheckpoint(out) : null;
  if (options.resume && existsSync(resolvedFile) && readFileSync(resolvedFile, "utf8") !== resolved) {
    throw new RangeError(`${out}: --resume with a config that differs from ${resolvedFile}`);
  }
  const metricsLog = new MetricsLog(out);
  if (!options.resume && metricsLog.exists()) throw new RangeError(`${out} already holds a run; use --resume or a new output_dir`);
  manualSeed(t.seed);

  // ---- model and method --------------------------------------------------------------------
  const model = options.model?.model ?? loadModel(config.model, { dtype: t.dtype, device: t.device as Device });
  const modelDir = model.dir;
  const cleanup: (() => void)[] = options.model ? [] : [() => model.dispose()];
  const tokenizer = options.model?.tokenizer ?? ChatTokenizer.fromDir(modelDir);
  const trainables = new Map<string, Tensor>();
  // Logits of the reference (chat) model for the KL term: the same weights with the method switched
  // off, or for full SFT a frozen copy.
  const forwardOf = (m: LoadedModel) => (b: Batch) => m.decoder.forward(b.ids, { attentionMask: b.attentionMask }).logits!;
  let referenceLogits: (batch: Batch) => Tensor = forwardOf(model);
  const adapters: LoraAdapter[] = [];
  let steering: SteeringVector | null = null;
  if (config.method === "lora" && options.model?.adapters) {
    for (const adapter of options.model.adapters) {
      if (!model.decoder.adapters.list.includes(adapter)) {
        model.decoder.adapters.attach(adapter);
        cleanup.push(() => model.decoder.adapters.detach(adapter));
      }
      adapters.push(adapter);
      for (const [module, m] of adapter.modules) {
        trainables.set(`${adapter.name}/${module}.lora_A`, m.A);
        trainables.set(`${adapter.name}/${module}.lora_B`, m.B);
      }
    }
    referenceLogits = (b) => model.decoder.adapters.withoutAdapters(() => forwardOf(model)(b));
  } else if (config.method === "lora") {
    for (const l of config.lora) {
      const adapter = LoraAdapter.create(
        model.spec,
        { r: l.r, alpha: l.alpha, useRslora: l.use_rslora, dropout: l.dropout, targetModules: l.target_modules, layersToTransform: l.layers_to_transform },
        { name: l.name, initB: l.init_b, device: model.decoder.device },
      );
      model.decoder.adapters.attach(adapter);
      adapters.push(adapter);
      cleanup.push(() => adapter.dispose());
      for (const [module, m] of adapter.modules) {
        trainables.set(`${l.name}/${module}.lora_A`, m.A);
        trainables.set(`${l.name}/${module}.lora_B`, m.B);
      }
    }
    referenceLogits = (b) => model.decoder.adapters.withoutAdapters(() => forwardOf(model)(b));
  } else if (config.method === "steering") {
    const s = config.steering!;
    steering = SteeringVector.create(model.decoder, s.layer, { site: s.site, alpha: s.alpha, rows: s.rows });
    const handle = steering.attach(model.decoder);
    cleanup.push(() => {
      handle.remove();
      steering!.dispose();
    });
    trainables.set("steering.vector", steering.vector);
    const sv = steering;
    referenceLogits = (b) => sv.withoutSteering(() => forwardOf(model)(b));
  } else {
    const pattern = config.full.parameters ? new RegExp(config.full.parameters) : null;
    for (const [name, p] of model.parameters) if (!pattern || pattern.test(name)) trainables.set(name, p.requiresGrad_());
    if (config.kl) {
      // Full SFT changes the weights themselves: the reference is a frozen copy.
      const frozen = loadModel(modelDir, { dtype: t.dtype, device: t.device as Device });
      cleanup.push(() => frozen.dispose());
      referenceLogits = forwardOf(frozen);
    }
  }
  if (config.init_from && config.method === "lora") initLoraFrom(config.init_from, adapters, model);
  if (config.init_from && steering) initSteeringFrom(config.init_from, steering, model);
  if (trainables.size === 0) throw new RangeError("nothing to train (no parameter matched)");

  // ---- data ---------------------------------------------------------------------------------
  const tokenizeAll = (file: string, lossOn: RunConfig["data"]["loss_on"]): Example[] => {
    const { examples, skipped } = readChatDataset(file, { skipInvalid: config.data.skip_invalid });
    if (skipped > 0) log(`${file}: skipped ${skipped} invalid rows`);
    return examples.map((e) => ({
      ...tokenizeExample(tokenizer, e.messages, { lossOn, systemPrompt: config.data.system_prompt, maxLength: config.data.max_length }),
      source: `${file}:${e.line}`,
    }));
  };
  const all = tokenizeAll(config.data.train, config.data.loss_on);
  let trainSet = all;
  let evalSet: Example[] = [];
  if (config.data.eval) evalSet = tokenizeAll(config.data.eval, config.data.loss_on);
  else if (config.data.eval_fraction > 0) {
    const split = heldOutSplit(all.length, config.data.eval_fraction, t.seed);
    trainSet = split.train.map((i) => all[i]!);
    evalSet = split.heldOut.map((i) => all[i]!);
  }
  if (trainSet.length === 0) throw new RangeError(`${config.data.train}: no training examples`);
  const klSet = config.kl ? tokenizeAll(config.kl.data, "all") : [];
  const pad = tokenizer.padTokenId ?? tokenizer.endOfTurnIds(model.eosTokenIds)[0] ?? 0;
  const lengths = trainSet.map((e) => e.ids.length);
  const batchesPerEpoch = Math.ceil(trainSet.length / t.batch_size);
  const totalSteps = t.max_steps ?? Math.ceil((batchesPerEpoch * t.epochs) / t.gradient_accumulation);
  const epochsDrawn = t.max_steps === null ? t.epochs : Math.ceil((t.max_steps * t.gradient_accumulation) / batchesPerEpoch);
  const batchesOf = (epoch: number) => epochBatches(lengths, t.batch_size, t.seed, epoch, config.data.bucket_window);
  assertLabelledBatches(trainSet, batchesOf, epochsDrawn, evalSet, t.batch_size, config.data.max_length);
  log(`train ${trainSet.length} examples, held out ${evalSet.length}, ${totalSteps} optimizer steps, ${trainables.size} trainable tensors`);

  // A finished run resumed: say so and change nothing.
  const finishedAt = checkpoint ? readCheckpointPosition(checkpoint) : null;
  const artefactPath = join(out, config.method === "lora" ? "adapter" : config.method === "steering" ? "steering_vector.safetensors" : "model");
  if (finishedAt && existsSync(artefactPath) && (finishedAt.step >= totalSteps || (t.early_stop !== null && finishedAt.lowLossStreak > t.early_stop.patience))) {
    log(`${out}: the run already finished at step ${finishedAt.step} (${artefactPath}); nothing to do`);
    for (const fn of cleanup.reverse()) fn();
    const lastLoss = readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as { loss?: number }).filter((m) => m.loss !== undefined).at(-1)?.loss;
    return { outputDir: out, steps: finishedAt.step, finalLoss: lastLoss ?? Number.NaN, stoppedEarly: finishedAt.step < totalSteps, artefact: artefactPath, alreadyFinished: true };
  }
  // Every input has been read and checked: the run directory is written from here on.
  makeOutputDir(out);
  for (const stale of removeStaleCheckpointTemporaries(out)) log(`removed ${stale} (left by an interrupted run)`);
  writeOutputFile(resolvedFile, resolved);

  // Low-precision full SFT trains float32 master copies (LoRA and steering tensors are float32 already).
  const masters = config.method === "full" && t.dtype !== "f32" ? new MasterWeights(trainables) : null;
  if (masters) cleanup.push(() => masters.dispose());
  const optimized = masters ? masters.masters : trainables;
  const optimizer = new AdamW([...optimized.values()], { lr: t.lr, betas: t.betas, eps: t.eps, weightDecay: t.weight_decay });
  cleanup.push(() => optimizer.dispose());

  let position: TrainerPosition = { step: 0, epoch: 0, batchInEpoch: 0, klCursor: 0, lowLossStreak: 0 };
  if (checkpoint) {
    position = loadCheckpoint(checkpoint, optimized, optimizer);
    masters?.pushWeights();
    log(`resumed from ${checkpoint} at step ${position.step}`);
  }
  // Steps after the checkpoint (all of them without one) are run again, the final line written again.
  if (options.resume) metricsLog.truncateAfter(position.step);
  let order = epochBatches(lengths, t.batch_size, t.seed, position.epoch, config.data.bucket_window);
  const nextBatch = (): Example[] | null => {
    if (position.batchInEpoch >= order.length) {
      position.epoch++;
      position.batchInEpoch = 0;
      if (t.max_steps === null && position.epoch >= t.epochs) return null;
      order = epochBatches(lengths, t.batch_size, t.seed, position.epoch, config.data.bucket_window);
    }
    return order[position.batchInEpoch++]!.map((i) => trainSet[i]!);
  };
  const nextKlBatch = (): Example[] => {
    const size = config.kl!.batch_size;
    const batch = Array.from({ length: size }, (_, i) => klSet[(position.klCursor + i) % klSet.length]!);
    position.klCursor = (position.klCursor + size) % klSet.length;
    return batch;
  };

  const device = model.decoder.device;
  const evalLoss = (): number => datasetLoss(model, evalSet, { batchSize: t.batch_size, padId: pad });

  const lossTerms = options.lossTerms ?? [];
  const forwardOptions = { checkpointing: t.gradient_checkpointing, capture: capturedPoints(lossTerms) };
  const state: TrainerState = { model, tokenizer, trainables, totalSteps, outputDir: out };
  const callbacks = options.callbacks ?? {};
  callbacks.setup?.(state);

  // ---- loop -----------------------------------------------------------------------------------
  model.decoder.adapters.training = true;
  let finalLoss = Number.NaN;
  let stoppedEarly = false;
  try {
    let lastGoodRng: Tensor | null = null;
    cleanup.push(() => lastGoodRng?.dispose());
    while (position.step < totalSteps) {
      const started = Date.now();
      callbacks.beforeStep?.(position.step, state);
      // Where a non-finite step would be checkpointed from: the position and RNG before it.
      const lastGood = { ...position };
      lastGoodRng?.dispose();
      lastGoodRng = getRngState();
      const lr = t.lr * lrMultiplier(t.schedule, position.step, totalSteps, t.warmup_steps);
      for (const group of optimizer.groups) group.options.lr = lr;
      let ce = 0;
      let ceObjective = 0;
      let kl = 0;
      let tokens = 0;
      let micro = 0;
      const terms: Record<string, number> = {};
      // The whole accumulation window is drawn first: the study's CE is normalised by its target count.
      const window: Example[][] = [];
      for (let i = 0; i < t.gradient_accumulation; i++) {
        const examples = nextBatch();
        if (examples === null) break;
        window.push(examples);
      }
      const windowTargets = lossTargets(window.flat());
      for (; micro < window.length; micro++) {
        const examples = window[micro]!;
        const ceWeight = ceFactor(t.ce_reduction, lossTargets(examples), windowTargets, t.gradient_accumulation);
        tidy(() =>
          enableGrad(() => {
            const batch = collate(examples, pad, device);
            tokens += batch.tokens;
            const termReference = lossTerms.some((term) => term.reference) ? noGrad(() => referenceLogits(batch)) : null;
            backwardThrough(model, batch, forwardOptions, (logits, activations) => {
              const ceLoss = causalLmLoss(logits, batch.labels);
              const ceValue = ceLoss.toNumber();
              ce += ceValue;
              // A micro-batch without targets adds nothing to a token-weighted window (its mean CE is 0/0).
              let loss = ceWeight === 0 ? logits.sum().mul(0) : ceLoss.mul(ceWeight);
              if (ceWeight !== 0) ceObjective += ceValue * ceWeight;
              for (const term of lossTerms) {
                const value = term.compute({ model, batch, logits, activations, referenceLogits: term.reference ? termReference : null, step: position.step });
                terms[term.name] = (terms[term.name] ?? 0) + value.toNumber();
                loss = loss.add(value.mul(term.weight / t.gradient_accumulation));
              }
              return loss;
            });
            if (config.kl) {
              const kl_ = config.kl;
              const klBatch = collate(nextKlBatch(), pad, device);
              const reference = noGrad(() => referenceLogits(klBatch));
              backwardThrough(model, klBatch, { ...forwardOptions, capture: [] }, (current) => {
                const penalty = klPenalty(current, reference, klBatch.attentionMask, kl_.normalization);
                kl += penalty.toNumber();
                return penalty.mul(klFactor(kl_.accumulation, kl_.weight, t.gradient_accumulation));
              });
            }
          }),
        );
      }
      if (micro === 0) break; // data exhausted
      callbacks.afterBackward?.(position.step, state);
      masters?.pullGradients();
      const atCheckpoint = position.step + 1 === totalSteps || (position.step + 1) % t.save_steps === 0;
      // Checkpoints keep the accumulated gradient as it was before clipping (as the study saved it, §7.9).
      const gradients = atCheckpoint ? snapshotGradients(optimized) : new Map<string, Tensor>();
      const gradNorm = clipGradNorm([...optimized.values()], t.max_grad_norm ?? Number.POSITIVE_INFINITY);
      const nonFinite = nonFiniteIn({ ce, ...(config.kl ? { kl } : {}), ...terms, grad_norm: gradNorm });
      if (nonFinite !== null && t.on_nonfinite === "error") {
        optimizer.zeroGrad();
        for (const g of gradients.values()) g.dispose();
        // The regular checkpoint of that step, when there is one, is kept as it is (with its gradient snapshot).
        const regular = checkpointDir(out, lastGood.step);
        const saved = existsSync(regular) ? regular : saveCheckpoint(out, lastGood, optimized, optimizer, new Map(), { rngState: lastGoodRng });
        throw new NonFiniteStepError({
          message: `step ${position.step + 1}: non-finite ${nonFinite}; the last good step ${lastGood.step} is checkpointed in ${saved} (training.on_nonfinite: skip drops such steps)`,
          step: position.step + 1,
          checkpoint: saved,
        });
      }
      if (nonFinite === null) {
        optimizer.step();
        masters?.pushWeights();
      }
      position.step++;
      optimizer.zeroGrad();
      // Logged values are the step objective's parts: CE as reduced over the window, weight x KL as accumulated.
      const ceOfStep = t.ce_reduction === "micro_mean" ? ce / micro : ceObjective;
      const klOfStep = config.kl ? (config.kl.accumulation === "sum" ? config.kl.weight * kl : (config.kl.weight * kl) / micro) : 0;
      const metrics: StepMetrics = {
        step: position.step,
        epoch: position.epoch,
        loss: ceOfStep + klOfStep + Object.entries(terms).reduce((s, [name, v]) => s + v * (options.lossTerms!.find((x) => x.name === name)!.weight), 0) / micro,
        ce: ceOfStep,
        kl: config.kl ? kl / micro : null,
        lr,
        grad_norm: gradNorm,
        tokens_per_s: tokens / Math.max(1e-3, (Date.now() - started) / 1000),
        ...(Object.keys(terms).length > 0 ? { terms: Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, v / micro])) } : {}),
        ...(nonFinite !== null ? { skipped: `non-finite ${nonFinite}` } : {}),
      };
      if (t.eval_steps && position.step % t.eval_steps === 0 && evalSet.length > 0) {
        metrics.eval_loss = evalLoss();
        callbacks.evaluation?.({ step: position.step, loss: metrics.eval_loss, final: false }, state);
      }
      finalLoss = metrics.loss;
      metricsLog.append(metrics);
      options.onStep?.(metrics, totalSteps);
      callbacks.afterStep?.(metrics as StepMetrics & Record<string, unknown>, state);
      if (t.early_stop) {
        position.lowLossStreak = metrics.loss < t.early_stop.loss_below ? position.lowLossStreak + 1 : 0;
        if (position.lowLossStreak > t.early_stop.patience) stoppedEarly = true;
      }
      if (atCheckpoint || stoppedEarly) {
        saveCheckpoint(out, position, optimized, optimizer, gradients);
        callbacks.checkpoint?.(checkpointDir(out, position.step), position.step, state);
      }
      for (const g of gradients.values()) g.dispose();
      if (stoppedEarly) {
        log(`early stop at step ${position.step}: loss below ${t.early_stop!.loss_below} for more than ${t.early_stop!.patience} steps`);
        break;
      }
    }
    model.decoder.adapters.training = false;
    const heldOut = evalSet.length > 0 ? evalLoss() : Number.NaN;
    if (Number.isFinite(heldOut)) {
      metricsLog.append({ step: position.step, final_eval_loss: heldOut });
      callbacks.evaluation?.({ step: position.step, loss: heldOut, final: true }, state);
    }

    // ---- final artefact ---------------------------------------------------------------------
    let artefact: string;
    if (config.method === "lora") {
      artefact = join(out, "adapter");
      for (const adapter of adapters) savePeftAdapter(adapters.length === 1 ? artefact : pathInside(artefact, adapter.name), adapter, { baseModel: modelDir });
    } else if (config.method === "steering") {
      artefact = join(out, "steering_vector.safetensors");
      saveSafetensors(artefact, { vector: steering!.vector }, { layer: String(steering!.layer), site: steering!.site, alpha: String(steering!.alpha) });
    } else {
      artefact = join(out, "model");
      makeOutputDir(artefact);
      saveSafetensors(join(artefact, "model.safetensors"), model.parameters, { format: "pt" });
      for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]) {
        if (existsSync(join(modelDir, f))) writeOutputFile(join(artefact, f), readFileSync(join(modelDir, f)));
      }
    }
    return { outputDir: out, steps: position.step, finalLoss, stoppedEarly, artefact };
  } finally {
    model.decoder.adapters.training = false;
    for (const fn of cleanup.reverse()) fn();
  }
}
