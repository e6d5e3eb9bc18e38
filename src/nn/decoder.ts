/**
 * The decoder-only transformer all supported families share, run from a DecoderSpec and its
 * weights: embedding (optionally scaled), layers of [norm -> attention -> (post-norm) -> add,
 * norm -> gated MLP -> (post-norm) -> add], final norm, lm_head (optionally soft-capped). Hook points
 * (src/hooks/points.ts) are run at fixed sites; with no hooks a site costs one Map lookup.
 */
import { AdapterSet } from "../adapters/adapter-set.js";
import { HookRegistry } from "../hooks/registry.js";
import { isHookPoint, layerPoint } from "../hooks/points.js";
import type { DecoderSpec } from "../models/spec.js";
import { arange, embedding, keep, linear, type Tensor, tensor, tidy } from "../tensor/index.js";
import { type AttentionWeights, plainProjection, type Projection, selfAttention } from "./attention.js";
import type { KvCache } from "./kv-cache.js";
import { additiveMask, positionsFromMask } from "./masks.js";
import { downProjection, gatedActivation, type MlpWeights } from "./mlp.js";
import { rmsNorm } from "./rms-norm.js";
import { inverseFrequencies, type RopeSpec, ropeTables } from "./rope.js";

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
}

export interface ForwardOutput {
  /** [batch, pos, vocab] (or [batch, 1, vocab] for "last"); null for "none". */
  logits: Tensor | null;
  hiddenStates: Tensor[];
}

const ropeKey = (r: RopeSpec): string => JSON.stringify(r);

export class Decoder {
  readonly hooks: HookRegistry;
  /** LoRA adapters applied to the linear projections. */
  readonly adapters = new AdapterSet();
  private readonly invFreq = new Map<string, Tensor>();

  constructor(
    readonly spec: DecoderSpec,
    readonly weights: DecoderWeights,
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
    const spec = this.spec;
    const cache = options.cache ?? null;
    const result = tidy(() => {
      const ids = inputIds.to({ dtype: "i64", device: this.device });
      const [batch, pos] = ids.shape as [number, number];
      const past = cache?.length ?? 0;
      const keyMask = options.attentionMask ? options.attentionMask.to(this.device) : null;
      if (keyMask && keyMask.size(1) !== past + pos) {
        throw new RangeError(`attention mask covers ${keyMask.size(1)} positions; expected ${past + pos} (cached ${past} + new ${pos})`);
      }
      const positions =
        options.positions?.to(this.device) ??
        (keyMask ? positionsFromMask(keyMask, pos) : arange(past, past + pos, 1, { device: this.device }).unsqueeze(0).expand(batch, pos));

      let x = embedding(this.weights.embed, ids);
      if (spec.embeddingScale !== null) x = x.mul(tensor(spec.embeddingScale, { device: this.device }).to(x.dtype));
      x = this.hooks.run("embed", -1, x);
      const hidden: Tensor[] = options.hiddenStates ? [x] : [];

      const masks = new Map<number | null, Tensor>();
      const maskFor = (window: number | null): Tensor => {
        let mask = masks.get(window);
        if (!mask) {
          mask = additiveMask(keyMask, batch, pos, past + pos, past, window, x.dtype, this.device);
          masks.set(window, mask);
        }
        return mask;
      };
      const tables = new Map<string, { cos: Tensor; sin: Tensor }>();
      const ropeFor = (rope: RopeSpec): { cos: Tensor; sin: Tensor } => {
        const key = ropeKey(rope);
        let table = tables.get(key);
        if (!table) {
          table = ropeTables(this.inverseFrequencies(rope), positions);
          tables.set(key, table);
        }
        return table;
      };

      const shape = {
        numHeads: spec.numHeads,
        numKvHeads: spec.numKvHeads,
        headDim: spec.headDim,
        scale: spec.attentionScale,
        softcap: spec.attnSoftcap,
        normEps: spec.rmsNormEps,
        normStyle: spec.normStyle,
      };
      const last = spec.layers.length - 1;
      const adapted = this.adapters.active;
      spec.layers.forEach((layer, l) => {
        const w = this.weights.layers[l]!;
        const project: Projection = adapted ? this.projectionFor(l) : plainProjection;
        x = this.hooks.run(layerPoint(l, "resid_pre"), l, x);
        let attn = selfAttention(
          rmsNorm(x, w.inputNorm, spec.rmsNormEps, spec.normStyle),
          w.attention,
          shape,
          ropeFor(layer.rope),
          maskFor(layer.slidingWindow),
          cache ? { cache, layer: l } : null,
          project,
        );
        if (spec.sandwichNorms) attn = rmsNorm(attn, w.postAttentionNorm, spec.rmsNormEps, spec.normStyle);
        attn = this.hooks.run(layerPoint(l, "attn_out"), l, attn);
        x = this.hooks.run(layerPoint(l, "resid_mid"), l, x.add(attn));
        const mlpInput = rmsNorm(x, spec.sandwichNorms ? w.preFeedforwardNorm! : w.postAttentionNorm, spec.rmsNormEps, spec.normStyle);
        let mlp = this.hooks.run(layerPoint(l, "down_proj"), l, downProjection(gatedActivation(mlpInput, w.mlp, spec.activation, project), w.mlp, project));
        if (spec.sandwichNorms) mlp = rmsNorm(mlp, w.postFeedforwardNorm!, spec.rmsNormEps, spec.normStyle);
        mlp = this.hooks.run(layerPoint(l, "mlp_out"), l, mlp);
        x = this.hooks.run(layerPoint(l, "resid_post"), l, x.add(mlp));
        if (options.hiddenStates && l < last) hidden.push(x);
      });
      cache?.commit();

      let final = rmsNorm(x, this.weights.finalNorm, spec.rmsNormEps, spec.normStyle);
      final = this.hooks.run("final_norm", -1, final);
      if (options.hiddenStates) hidden.push(final);
      const which = options.logits ?? "all";
      let logits: Tensor | null = null;
      if (which !== "none") {
        const input = which === "last" ? final.narrow(1, pos - 1, 1) : final;
        logits = linear(input, this.weights.lmHead);
        if (spec.finalSoftcap !== null) logits = logits.div(spec.finalSoftcap).tanh().mul(spec.finalSoftcap);
      }
      return { logits, hiddenStates: hidden };
    });
    return result;
  }

  /** Routes layer `l`'s projections through the adapters (module names as in Hugging Face / PEFT). */
  private projectionFor(l: number): Projection {
    return (kind, x, weight, bias) => {
      const group = kind === "gate_proj" || kind === "up_proj" || kind === "down_proj" ? "mlp" : "self_attn";
      return this.adapters.linear(`model.layers.${l}.${group}.${kind}`, x, weight, bias);
    };
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
