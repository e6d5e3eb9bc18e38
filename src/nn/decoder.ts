/**
 * The decoder-only transformer all supported families share, run from a DecoderSpec and its
 * weights: embedding (optionally scaled), layers of [norm -> attention -> (post-norm) -> add,
 * norm -> gated MLP -> (post-norm) -> add], final norm, lm_head (optionally soft-capped). Hook points
 * (src/hooks/points.ts) are run at fixed sites; with no hooks a site costs one Map lookup, and the
 * per-head / MLP-internal points cost nothing unless a hook is registered in that layer. `capture` hands
 * back chosen activations of a pass (differentiable). Linear projections go through the injected
 * ProjectionSource (adapters supply it). The stages of a pass (prepare, embed, layer, head) are public
 * so training can wrap them (gradient checkpointing, src/train/checkpointed-forward.ts).
 */
import { HookRegistry } from "../hooks/registry.js";
import { type AttentionPoint, type HookPoint, isHookPoint, layerPoint, type MlpPoint } from "../hooks/points.js";
import { arange, embedding, keep, linear, type Tensor, tensor, tidy } from "../tensor/index.js";
import {
  type AttentionShape,
  type AttentionTap,
  type AttentionWeights,
  plainProjection,
  type Projection,
  selfAttention,
} from "./attention.js";
import type { KvCache } from "./kv-cache.js";
import { decodeLinear, decodeProjection } from "./decode-linear.js";
import { additiveMask, positionsFromMask } from "./masks.js";
import { downProjection, gatedActivation, type MlpWeights } from "./mlp.js";
import { rmsNorm } from "./rms-norm.js";
import { inverseFrequencies, type RopeSpec, ropeTables } from "./rope.js";
import { contextLengthError } from "./errors.js";
import { checkTokenIds } from "./token-ids.js";
import { linearModuleName } from "./linear-modules.js";
import { plainProjections, type ProjectionSource } from "./projections.js";
import type { DecoderSpec } from "./spec.js";

export interface LayerWeights {
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  preFeedforwardNorm: Tensor | null;
  postFeedforwardNorm: Tensor | null;
  attention: AttentionWeights;
  mlp: MlpWeights;
}

export interface DecoderWeights {
  embed: Tensor;
  layers: LayerWeights[];
  finalNorm: Tensor;
  /** The embedding matrix itself when embeddings are tied. */
  lmHead: Tensor;
}

export interface ForwardOptions {
  /** [batch, past + pos], 1 for real tokens and 0 for padding (default: all real). */
  attentionMask?: Tensor | null;
  /** RoPE positions [batch, pos] (default: from the attention mask, else past .. past + pos - 1). */
  positions?: Tensor | null;
  /** Keys/values of earlier positions; this pass appends its own. */
  cache?: KvCache | null;
  /** Return Hugging Face's hidden_states (embeddings, each layer's output, the last one after the final norm). */
  hiddenStates?: boolean;
  /** Which logits to compute: every position (default), only the last, or none. */
  logits?: "all" | "last" | "none";
  /** Hook points whose activations (after every registered hook) come back in `activations`, in the autograd graph. */
  capture?: readonly HookPoint[];
}

export interface ForwardOutput {
  /** [batch, pos, vocab] (or [batch, 1, vocab] for "last"); null for "none". */
  logits: Tensor | null;
  hiddenStates: Tensor[];
  /** The `capture`d activations by point (empty without `capture`). */
  activations: Map<HookPoint, Tensor>;
}

const attentionPoints: readonly AttentionPoint[] = ["attn.q", "attn.k", "attn.v", "attn.scores", "attn.pattern", "attn.z"];
const mlpPoints: readonly MlpPoint[] = ["mlp.gate", "mlp.up", "mlp.hidden"];

const ropeKey = (r: RopeSpec): string => JSON.stringify(r);

/** What every layer of one forward pass shares: ids, cache, masks and RoPE tables (built on first use). */
export interface LayerContext {
  ids: Tensor;
  cache: KvCache | null;
  adapted: boolean;
  /** One new position per row on top of a cache: the projections take the decode fast path. */
  decoding: boolean;
  maskFor(window: number | null): Tensor;
  ropeFor(rope: RopeSpec): { cos: Tensor; sin: Tensor };
  shape: AttentionShape;
}

export class Decoder<Projections extends ProjectionSource = ProjectionSource> {
  readonly hooks: HookRegistry;
  private readonly invFreq = new Map<string, Tensor>();

  /** `adapters`: what the linear projections are routed through (LoRA adapters for a loaded model). */
  constructor(
    readonly spec: DecoderSpec,
    readonly weights: DecoderWeights,
    readonly adapters: Projections = plainProjections as Projections,
  ) {
    this.hooks = new HookRegistry((point) => isHookPoint(point, spec.layers.length));
    // RoPE frequencies are computed once, up front, so forward passes leave the tensor count unchanged.
    for (const layer of spec.layers) this.inverseFrequencies(layer.rope);
  }

  get numLayers(): number {
    return this.spec.layers.length;
  }
  get device(): Tensor["device"] {
    return this.weights.embed.device;
  }
  get dtype(): Tensor["dtype"] {
    return this.weights.embed.dtype;
  }

  /** Runs the model on token ids [batch, pos] (int64). Returned tensors belong to the caller's scope. */
  forward(inputIds: Tensor, options: ForwardOptions = {}): ForwardOutput {
    const cache = options.cache ?? null;
    const activations = new Map<HookPoint, Tensor>();
    const captures = (options.capture ?? []).map((point) => this.hooks.add(point, (x) => void activations.set(point, x)));
    try {
      return this.forwardPass(inputIds, options, cache, activations);
    } finally {
      for (const handle of captures) handle.remove();
    }
  }

  private forwardPass(
    inputIds: Tensor,
    options: ForwardOptions,
    cache: KvCache | null,
    activations: Map<HookPoint, Tensor>,
  ): ForwardOutput {
    return tidy(() => {
      const context = this.prepare(inputIds, options);
      let x = this.embed(context.ids);
      const hidden: Tensor[] = options.hiddenStates ? [x] : [];
      const last = this.spec.layers.length - 1;
      // Without hooks (which may hold on to a layer's tensors) each layer runs in its own scope, so its
      // intermediates are freed when it ends (autograd keeps what backward needs) rather than when the
      // whole pass does: peak memory of one layer, not of all. Masks and RoPE tables are built first.
      const layerScopes = this.hooks.size === 0;
      if (layerScopes) for (const layer of this.spec.layers) void (context.maskFor(layer.slidingWindow), context.ropeFor(layer.rope));
      for (let l = 0; l <= last; l++) {
        const input = x;
        x = layerScopes ? tidy(() => this.layer(l, input, context)) : this.layer(l, input, context);
        if (options.hiddenStates && l < last) hidden.push(x);
      }
      cache?.commit();
      const { final, logits } = this.head(x, options.logits ?? "all");
      if (options.hiddenStates) hidden.push(final);
      return { logits, hiddenStates: hidden, activations };
    });
  }

  /** Checks the ids (TokenIdError: not integer, not [batch, pos], outside the vocabulary), then: ids on the model's device, positions, and lazily built masks and RoPE tables for one forward pass. */
  prepare(inputIds: Tensor, options: ForwardOptions): LayerContext {
    const spec = this.spec;
    const cache = options.cache ?? null;
    checkTokenIds(inputIds, spec.vocabSize);
    const ids = inputIds.to({ dtype: "i64", device: this.device });
    const [batch, pos] = ids.shape as [number, number];
    const past = cache?.length ?? 0;
    if (spec.maxPositions !== null && past + pos > spec.maxPositions)
      throw contextLengthError("this forward pass", past + pos, spec.maxPositions);
    const keyMask = options.attentionMask ? options.attentionMask.to(this.device) : null;
    if (keyMask && keyMask.size(1) !== past + pos) {
      throw new RangeError(`attention mask covers ${keyMask.size(1)} positions; expected ${past + pos} (cached ${past} + new ${pos})`);
    }
    const positions =
      options.positions?.to(this.device) ??
      (keyMask
        ? positionsFromMask(keyMask, pos)
        : arange(past, past + pos, 1, { device: this.device })
            .unsqueeze(0)
            .expand(batch, pos));
    const masks = new Map<number | null, Tensor>();
    const tables = new Map<string, { cos: Tensor; sin: Tensor }>();
    const dtype = this.weights.embed.dtype;
    return {
      ids,
      cache,
      adapted: this.adapters.active,
      decoding: cache !== null && pos === 1,
      maskFor: (window) => {
        let mask = masks.get(window);
        if (!mask) {
          mask = additiveMask(keyMask, batch, pos, past + pos, past, window, dtype, this.device);
          masks.set(window, mask);
        }
        return mask;
      },
      ropeFor: (rope) => {
        const key = ropeKey(rope);
        let table = tables.get(key);
        if (!table) {
          table = ropeTables(this.inverseFrequencies(rope), positions);
          tables.set(key, table);
        }
        return table;
      },
      shape: {
        numHeads: spec.numHeads,
        numKvHeads: spec.numKvHeads,
        headDim: spec.headDim,
        scale: spec.attentionScale,
        softcap: spec.attnSoftcap,
        normEps: spec.rmsNormEps,
        normStyle: spec.normStyle,
      },
    };
  }

  /** Token embeddings (scaled for Gemma), after the `embed` hooks. */
  embed(ids: Tensor): Tensor {
    let x = embedding(this.weights.embed, ids);
    if (this.spec.embeddingScale !== null) x = x.mul(tensor(this.spec.embeddingScale, { device: this.device }).to(x.dtype));
    return this.hooks.run("embed", -1, x);
  }

  /** Decoder layer `l` on the residual stream x, hooks included. */
  layer(l: number, input: Tensor, context: LayerContext): Tensor {
    const spec = this.spec;
    const layer = spec.layers[l]!;
    const w = this.weights.layers[l]!;
    const project: Projection = context.adapted
      ? this.projectionFor(l, context.decoding)
      : context.decoding
        ? decodeProjection
        : plainProjection;
    const taps = this.hooks.size === 0 ? null : this.tapsFor(l);
    let x = this.hooks.run(layerPoint(l, "resid_pre"), l, input);
    let attn = selfAttention(
      rmsNorm(x, w.inputNorm, spec.rmsNormEps, spec.normStyle),
      w.attention,
      context.shape,
      context.ropeFor(layer.rope),
      context.maskFor(layer.slidingWindow),
      context.cache ? { cache: context.cache, layer: l } : null,
      project,
      taps?.attention ?? null,
    );
    if (spec.sandwichNorms) attn = rmsNorm(attn, w.postAttentionNorm, spec.rmsNormEps, spec.normStyle);
    attn = this.hooks.run(layerPoint(l, "attn_out"), l, attn);
    x = this.hooks.run(layerPoint(l, "resid_mid"), l, x.add(attn));
    const mlpInput = rmsNorm(x, spec.sandwichNorms ? w.preFeedforwardNorm! : w.postAttentionNorm, spec.rmsNormEps, spec.normStyle);
    let mlp = this.hooks.run(
      layerPoint(l, "down_proj"),
      l,
      downProjection(gatedActivation(mlpInput, w.mlp, spec.activation, project, taps?.mlp ?? null), w.mlp, project),
    );
    if (spec.sandwichNorms) mlp = rmsNorm(mlp, w.postFeedforwardNorm!, spec.rmsNormEps, spec.normStyle);
    mlp = this.hooks.run(layerPoint(l, "mlp_out"), l, mlp);
    return this.hooks.run(layerPoint(l, "resid_post"), l, x.add(mlp));
  }

  /** Hook runners for layer l's per-head and MLP-internal points, null where none is registered. */
  private tapsFor(l: number): { attention: AttentionTap | null; mlp: ((point: MlpPoint, x: Tensor) => Tensor) | null } {
    const hooks = this.hooks;
    const attention = attentionPoints.some((p) => hooks.has(layerPoint(l, p)))
      ? {
          explicit: hooks.has(layerPoint(l, "attn.scores")) || hooks.has(layerPoint(l, "attn.pattern")),
          run: (p: AttentionPoint, x: Tensor) => hooks.run(layerPoint(l, p), l, x),
        }
      : null;
    const mlp = mlpPoints.some((p) => hooks.has(layerPoint(l, p))) ? (p: MlpPoint, x: Tensor) => hooks.run(layerPoint(l, p), l, x) : null;
    return { attention, mlp };
  }

  /** Final norm (after its hooks) and logits (soft-capped for Gemma 2). */
  head(x: Tensor, which: "all" | "last" | "none"): { final: Tensor; logits: Tensor | null } {
    const spec = this.spec;
    let final = rmsNorm(x, this.weights.finalNorm, spec.rmsNormEps, spec.normStyle);
    final = this.hooks.run("final_norm", -1, final);
    if (which === "none") return { final, logits: null };
    const input = which === "last" ? final.narrow(1, final.size(1) - 1, 1) : final;
    let logits = which === "last" ? decodeLinear(input, this.weights.lmHead) : linear(input, this.weights.lmHead);
    if (spec.finalSoftcap !== null) logits = logits.div(spec.finalSoftcap).tanh().mul(spec.finalSoftcap);
    return { final, logits };
  }

  /**
   * Routes layer `l`'s projections through the injected source (module names as in Hugging Face / PEFT);
   * while decoding, the source computes the base product with decodeLinear.
   */
  private projectionFor(l: number, decoding: boolean): Projection {
    const base = decoding ? decodeLinear : linear;
    return (kind, x, weight, bias) => this.adapters.linear(linearModuleName(l, kind), x, weight, bias, base);
  }

  private inverseFrequencies(rope: RopeSpec): Tensor {
    const key = ropeKey(rope);
    let inv = this.invFreq.get(key);
    if (!inv) {
      inv = keep(inverseFrequencies(rope, this.spec.headDim, this.device));
      this.invFreq.set(key, inv);
    }
    return inv;
  }

  /** Frees cached RoPE frequencies (weights are owned by the LoadedModel). */
  dispose(): void {
    for (const t of this.invFreq.values()) t.dispose();
    this.invFreq.clear();
  }
}
