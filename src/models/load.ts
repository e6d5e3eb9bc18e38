/**
 * Loading a local Hugging Face model directory into a Decoder: config -> family -> spec, then every
 * expected weight checked for presence and shape (typed errors name the tensor and file), read
 * straight from safetensors into libtorch in the requested dtype and device. Unused weights are
 * reported. The LoadedModel owns the weights: dispose() frees them.
 */
import { join } from "node:path";
import { AdapterSet } from "../adapters/adapter-set.js";
import { Decoder, type DecoderWeights, type LayerWeights } from "../nn/decoder.js";
import { LINEAR_MODULES } from "../nn/linear-modules.js";
import { loadSafetensors } from "../io/safetensors.js";
import { checkDeviceAvailable, type Device, type DType, keep, noGrad, normalizeDevice, type Tensor, TensorScope } from "../tensor/index.js";
import { ModelConfigError, ModelWeightsError } from "./errors.js";
import { familyFor } from "./families.js";
import { type HfConfig, type HfGenerationConfig, readGenerationConfig, readHfConfig, tokenIds } from "./hf-config.js";
import type { DecoderSpec } from "../nn/spec.js";
import type { ModelSpec } from "./spec.js";
import { indexWeights, type WeightSource } from "./weights.js";

export interface ModelLoadOptions {
  /** Compute dtype; default: f32 (float checkpoints are converted; use "bf16" to keep bf16). */
  dtype?: DType;
  device?: Device;
  /**
   * Load even when the checkpoint holds tensors the config does not use (listed in
   * `unusedWeights`). Off by default: such tensors mean config and weights do not belong together
   * (e.g. Gemma 3 q/k norms under a Gemma 2 config, more layers than num_hidden_layers).
   */
  allowUnusedWeights?: boolean;
}

/** Non-parameter buffers some checkpoints carry (recomputed here from the config). */
const IGNORED_BUFFERS = /\.rotary_emb\.inv_freq$/;
/** Wrapper architectures whose checkpoints legitimately hold other modalities' towers. */
const MULTIMODAL_ARCHITECTURES = new Set(["Gemma3ForConditionalGeneration"]);

export interface LoadedModel {
  readonly dir: string;
  readonly config: HfConfig;
  readonly generationConfig: HfGenerationConfig | null;
  readonly spec: ModelSpec;
  /** The decoder, its projections routed through the model's LoRA adapter set. */
  readonly decoder: Decoder<AdapterSet>;
  /** Every weight by its Hugging Face name (tied lm_head not repeated). */
  readonly parameters: ReadonlyMap<string, Tensor>;
  /** Checkpoint tensors the model does not use. */
  readonly unusedWeights: readonly string[];
  /** EOS ids from generation_config.json, else config.json. */
  readonly eosTokenIds: readonly number[];
  /** Frees the weights (idempotent). */
  dispose(): void;
  /** Same as dispose(), for `using`. */
  [Symbol.dispose](): void;
}

/** Expected weights with their shapes, in load order. */
export function expectedWeights(spec: DecoderSpec): Map<string, number[]> {
  const d = spec.hiddenSize;
  const out = new Map<string, number[]>([["model.embed_tokens.weight", [spec.vocabSize, d]]]);
  const attention = LINEAR_MODULES.filter((m) => m.group === "self_attn");
  const mlp = LINEAR_MODULES.filter((m) => m.group === "mlp");
  spec.layers.forEach((_, l) => {
    const p = `model.layers.${l}.`;
    // Weights of a group, then its biases (the order checkpoints list them in).
    const linears = (rows: typeof LINEAR_MODULES) => {
      for (const m of rows) out.set(`${p}${m.group}.${m.kind}.weight`, m.shape(spec));
      for (const m of rows) if (m.hasBias(spec)) out.set(`${p}${m.group}.${m.kind}.bias`, [m.shape(spec)[0]]);
    };
    out.set(`${p}input_layernorm.weight`, [d]);
    linears(attention);
    if (spec.qkNorm) {
      out.set(`${p}self_attn.q_norm.weight`, [spec.headDim]);
      out.set(`${p}self_attn.k_norm.weight`, [spec.headDim]);
    }
    out.set(`${p}post_attention_layernorm.weight`, [d]);
    if (spec.sandwichNorms) {
      out.set(`${p}pre_feedforward_layernorm.weight`, [d]);
      out.set(`${p}post_feedforward_layernorm.weight`, [d]);
    }
    linears(mlp);
  });
  out.set("model.norm.weight", [d]);
  if (!spec.tieEmbeddings) out.set("lm_head.weight", [spec.vocabSize, d]);
  return out;
}

function readWeights(
  sources: Map<string, WeightSource>,
  expected: Map<string, number[]>,
  dtype: DType,
  device: Device,
): Map<string, Tensor> {
  for (const [name, shape] of expected) {
    const source = sources.get(name);
    if (!source) {
      const files = [...new Set([...sources.values()].map((s) => s.file))].join(", ");
      throw new ModelWeightsError({ message: `${files}: missing weight ${name}`, file: files, tensor: name });
    }
    if (!isFloat(source.entry.dtype)) {
      throw new ModelWeightsError({
        message: `${source.file}: weight ${name} is stored as ${source.entry.dtype}; model weights must be floating point (f32, f16, bf16 or f64)`,
        file: source.file,
        tensor: name,
      });
    }
    const got = source.entry.shape;
    if (got.length !== shape.length || got.some((n, i) => n !== shape[i])) {
      throw new ModelWeightsError({
        message: `${source.file}: weight ${name} has shape [${got.join(", ")}], expected [${shape.join(", ")}]`,
        file: source.file,
        tensor: name,
      });
    }
  }
  const byFile = new Map<string, WeightSource[]>();
  for (const name of expected.keys()) {
    const source = sources.get(name)!;
    byFile.set(source.file, [...(byFile.get(source.file) ?? []), source]);
  }
  const out = new Map<string, Tensor>();
  const scope = new TensorScope(null, true);
  try {
    scope.run(() =>
      noGrad(() => {
        for (const [file, list] of byFile) {
          const { tensors } = loadSafetensors(file, { names: list.map((s) => s.fileName), device });
          for (const s of list) {
            const raw = tensors.get(s.fileName)!;
            const converted = raw.dtype === dtype ? raw : raw.to(dtype);
            out.set(s.name, keep(converted));
          }
        }
      }),
    );
  } catch (error) {
    for (const t of out.values()) t.dispose();
    throw error;
  } finally {
    scope.close();
  }
  return out;
}

const isFloat = (d: DType): boolean => d === "f32" || d === "f16" || d === "bf16" || d === "f64";

function decoderWeights(spec: DecoderSpec, w: Map<string, Tensor>): DecoderWeights {
  const get = (name: string): Tensor => w.get(name)!;
  const opt = (name: string): Tensor | null => w.get(name) ?? null;
  const layers: LayerWeights[] = spec.layers.map((_, l) => {
    const p = `model.layers.${l}.`;
    return {
      inputNorm: get(`${p}input_layernorm.weight`),
      postAttentionNorm: get(`${p}post_attention_layernorm.weight`),
      preFeedforwardNorm: opt(`${p}pre_feedforward_layernorm.weight`),
      postFeedforwardNorm: opt(`${p}post_feedforward_layernorm.weight`),
      attention: {
        q: get(`${p}self_attn.q_proj.weight`),
        k: get(`${p}self_attn.k_proj.weight`),
        v: get(`${p}self_attn.v_proj.weight`),
        o: get(`${p}self_attn.o_proj.weight`),
        qBias: opt(`${p}self_attn.q_proj.bias`),
        kBias: opt(`${p}self_attn.k_proj.bias`),
        vBias: opt(`${p}self_attn.v_proj.bias`),
        oBias: opt(`${p}self_attn.o_proj.bias`),
        qNorm: opt(`${p}self_attn.q_norm.weight`),
        kNorm: opt(`${p}self_attn.k_norm.weight`),
      },
      mlp: {
        gate: get(`${p}mlp.gate_proj.weight`),
        up: get(`${p}mlp.up_proj.weight`),
        down: get(`${p}mlp.down_proj.weight`),
        gateBias: opt(`${p}mlp.gate_proj.bias`),
        upBias: opt(`${p}mlp.up_proj.bias`),
        downBias: opt(`${p}mlp.down_proj.bias`),
      },
    };
  });
  const embed = get("model.embed_tokens.weight");
  return { embed, layers, finalNorm: get("model.norm.weight"), lmHead: spec.tieEmbeddings ? embed : get("lm_head.weight") };
}

/** Loads the model in `dir` (config.json + safetensors). */
export function loadModel(dir: string, options: ModelLoadOptions = {}): LoadedModel {
  checkDeviceAvailable(normalizeDevice(options.device ?? "cpu"), `loading ${dir}`);
  const config = readHfConfig(dir);
  const file = join(dir, "config.json");
  const family = familyFor(config, file);
  const spec = family.toSpec(config, file);
  const generationConfig = readGenerationConfig(dir);
  const { sources, unused } = indexWeights(dir);
  const expected = expectedWeights(spec);
  const extra = [...sources.keys()].filter(
    (name) => !expected.has(name) && !(spec.tieEmbeddings && name === "lm_head.weight") && !IGNORED_BUFFERS.test(name),
  );
  const otherModalities = MULTIMODAL_ARCHITECTURES.has(config.architectures?.[0] ?? "") ? [] : unused;
  const unexpected = [...extra, ...otherModalities];
  if (unexpected.length > 0 && !options.allowUnusedWeights) {
    const shown = unexpected.slice(0, 5).join(", ");
    throw new ModelWeightsError({
      message:
        `${dir}: ${unexpected.length} checkpoint tensor(s) are not used by ${file} (${shown}${unexpected.length > 5 ? ", ..." : ""}); ` +
        "config and weights do not match (pass allowUnusedWeights / --allow-unused-weights to load anyway)",
      file: dir,
      tensor: unexpected[0]!,
    });
  }
  const dtype = options.dtype ?? "f32";
  if (!isFloat(dtype)) throw new ModelConfigError({ message: `${dir}: compute dtype must be floating point, got ${dtype}`, file: dir });
  const parameters = readWeights(sources, expected, dtype, options.device ?? "cpu");
  const decoder = new Decoder(spec, decoderWeights(spec, parameters), new AdapterSet());
  const eos = tokenIds(generationConfig?.eos_token_id);
  return {
    dir,
    config,
    generationConfig,
    spec,
    decoder,
    parameters,
    unusedWeights: [...unused, ...extra],
    eosTokenIds: eos.length > 0 ? eos : spec.eosTokenIds,
    dispose() {
      decoder.dispose();
      for (const t of parameters.values()) t.dispose();
    },
    [Symbol.dispose]() {
      this.dispose();
    },
  };
}
