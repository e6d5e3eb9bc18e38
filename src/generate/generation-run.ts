/**
 * One generation run advanced a decode step at a time: the prompt pass (prefill) happens when the run is
 * made, each `step()` chooses every row's next token and, unless the run has ended, runs the one-token
 * forward pass that yields the logits of the next step. The run owns its KV cache, attention mask and
 * last logits until `dispose()`. `generate()` drives it in a plain loop; `generateEffect()` yields to the
 * event loop between steps and can be interrupted there (its finalizer disposes the run).
 */
import type { Decoder } from "../nn/decoder.js";
import { KvCache } from "../nn/kv-cache.js";
import { cat, manualSeed, ones, type Tensor, tensor, tidy } from "../tensor/index.js";
import { chooseNext, type SamplingOptions } from "./sampling.js";

/** Validated, resolved settings of one run (see GenerateOptions for their meaning). */
export interface ResolvedGeneration {
  sampling: Required<SamplingOptions>;
  maxNewTokens: number;
  samples: number;
  eosTokenIds: readonly number[];
  padTokenId: number;
  seed: number | undefined;
  onStep: ((tokens: readonly number[], step: number) => void) | undefined;
}

export interface GenerationOutput {
  outputIds: number[][];
  newIds: number[][];
  finishReasons: ("eos" | "length")[];
  promptIndex: number[];
}

const idTensor = (values: readonly number[], shape: number[], device: Tensor["device"]): Tensor =>
  tensor(
    BigInt64Array.from(values, (v) => BigInt(v)),
    { shape, device },
  );

export class GenerationRun {
  /** Decode steps taken (tokens chosen per row). */
  steps = 0;
  private ended = false;
  private cache: KvCache | null;
  private mask: Tensor | null = null;
  private logits: Tensor | null = null;
  private readonly total: number;
  private readonly eos: ReadonlySet<number>;
  private readonly output: GenerationOutput;
  private readonly finished: boolean[];

  /** Seeds (when asked) and runs the prompt pass; on failure nothing stays allocated. */
  constructor(
    private readonly decoder: Decoder,
    inputIds: readonly (readonly number[])[],
    attentionMask: readonly (readonly number[])[] | null,
    private readonly settings: ResolvedGeneration,
  ) {
    const rows = inputIds.length;
    const length = inputIds[0]!.length;
    const samples = settings.samples;
    this.total = rows * samples;
    this.eos = new Set(settings.eosTokenIds);
    const promptIndex = Array.from({ length: this.total }, (_, i) => Math.floor(i / samples));
    this.output = {
      outputIds: promptIndex.map((p) => [...inputIds[p]!]),
      newIds: promptIndex.map(() => []),
      finishReasons: new Array<"eos" | "length">(this.total).fill("length"),
      promptIndex,
    };
    this.finished = new Array<boolean>(this.total).fill(false);
    if (settings.seed !== undefined) manualSeed(settings.seed);
    const device = decoder.device;
    this.cache = new KvCache(decoder.numLayers, length + settings.maxNewTokens);
    try {
      [this.mask, this.logits] = tidy(() => {
        const ids = idTensor(inputIds.flat(), [rows, length], device);
        const m = attentionMask ? idTensor(attentionMask.flat(), [rows, length], device) : ones([rows, length], { dtype: "i64", device });
        const out = decoder.forward(ids, { attentionMask: m, cache: this.cache, logits: "last" }).logits!;
        if (samples === 1) return [m.share(), out.share()];
        const repeat = idTensor(promptIndex, [this.total], device);
        const expanded = this.cache!.selectRows(repeat);
        this.cache!.dispose();
        this.cache = expanded;
        // share() makes handles that survive this scope; the originals are freed with it.
        return [m.indexSelect(0, repeat).share(), out.indexSelect(0, repeat).share()];
      });
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** True once every row has finished or maxNewTokens tokens were chosen. */
  get done(): boolean {
    return this.ended;
  }

  /** Chooses each row's next token; unless the run ends with it, runs the forward pass for the next step. */
  step(): void {
    if (this.ended) throw new Error("GenerationRun.step: the run has ended");
    const { outputIds, newIds, finishReasons } = this.output;
    const { settings, finished, total, decoder } = this;
    const logits = this.logits!;
    const chosen = tidy(() => Array.from(chooseNext(logits.select(1, 0), settings.sampling).toArray() as BigInt64Array, Number));
    const tokens = chosen.map((t, i) => (finished[i] ? settings.padTokenId : t));
    tokens.forEach((t, i) => {
      outputIds[i]!.push(t);
      if (!finished[i]) {
        newIds[i]!.push(t);
        if (this.eos.has(t)) {
          finished[i] = true;
          finishReasons[i] = "eos";
        }
      }
    });
    const step = this.steps++;
    settings.onStep?.(tokens, step);
    if (finished.every(Boolean) || this.steps === settings.maxNewTokens) {
      this.ended = true;
      return;
    }
    const previousMask = this.mask!;
    const device = decoder.device;
    const [mask, next] = tidy(() => {
      const ids = idTensor(tokens, [total, 1], device);
      const grown = cat([previousMask, ones([total, 1], { dtype: "i64", device })], 1);
      const out = decoder.forward(ids, { attentionMask: grown, cache: this.cache, logits: "last" }).logits!;
      return [grown, out];
    });
    this.mask = mask;
    this.logits = next;
    previousMask.dispose();
    logits.dispose();
  }

  /** The ids chosen so far (complete once `done`). */
  result(): GenerationOutput {
    return this.output;
  }

  /** Frees the KV cache, mask and logits (safe to call more than once). */
  dispose(): void {
    this.cache?.dispose();
    this.mask?.dispose();
    this.logits?.dispose();
    this.cache = null;
    this.mask = null;
    this.logits = null;
    this.ended = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
