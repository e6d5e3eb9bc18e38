/**
 * The models one `emlab serve` process offers, by the name a request gives in `model`: the base model
 * (its served name), each LoRA adapter (`--lora name=dir`, as vLLM names LoRA modules; a directory may
 * hold several adapters that act as one) and each steering vector (`--steer name=file[:alpha]`). All
 * are loaded at startup; a batch activates one of them (attach before, detach after).
 */
import { basename } from "node:path";
import { Data } from "effect";
import { loadPeftAdapters } from "../adapters/adapter-dirs.js";
import type { LoraAdapter } from "../adapters/lora.js";
import { loadSteeringVector } from "../train/steering-file.js";
import { loadModel, type LoadedModel } from "../models/load.js";
import type { Device, DType } from "../tensor/index.js";
import { ChatTokenizer } from "../tokenizer/tokenizer.js";
import type { SteeringVector } from "../train/steering.js";

/** A bad --lora / --steer / served-name setting, raised before the server listens. */
export class ServeConfigError extends Data.TaggedError("ServeConfigError")<{ readonly message: string }> {}

export interface ServedModelOptions {
  modelDir: string;
  /** Name of the base model in requests (default: the directory's name). */
  servedName?: string;
  lora?: readonly { name: string; dir: string }[];
  steer?: readonly { name: string; file: string; alpha?: number }[];
  dtype?: DType;
  device?: Device;
}

type Variant =
  { kind: "base" } | { kind: "lora"; adapters: LoraAdapter[]; dir: string } | { kind: "steer"; vector: SteeringVector; file: string };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** Parses `name=dir` (lora) or `name=file[:alpha]` (steer). */
export function parseNamedPath(flag: string, spec: string, withAlpha: boolean): { name: string; path: string; alpha?: number } {
  const eq = spec.indexOf("=");
  if (eq <= 0 || eq === spec.length - 1)
    throw new ServeConfigError({ message: `${flag}: expected NAME=${withAlpha ? "FILE[:ALPHA]" : "DIR"}, got ${JSON.stringify(spec)}` });
  const name = spec.slice(0, eq);
  let path = spec.slice(eq + 1);
  let alpha: number | undefined;
  if (withAlpha) {
    const colon = path.lastIndexOf(":");
    if (colon > 0 && /^[-+0-9.eE]+$/.test(path.slice(colon + 1))) {
      alpha = Number(path.slice(colon + 1));
      if (!Number.isFinite(alpha))
        throw new ServeConfigError({ message: `${flag}: alpha ${JSON.stringify(path.slice(colon + 1))} is not a number` });
      path = path.slice(0, colon);
    }
  }
  if (!NAME.test(name))
    throw new ServeConfigError({
      message: `${flag}: model name ${JSON.stringify(name)} must be 1-128 letters, digits or ._:/- (starting with a letter or digit)`,
    });
  return alpha === undefined ? { name, path } : { name, path, alpha };
}

export class ServedModels {
  readonly model: LoadedModel;
  readonly tokenizer: ChatTokenizer;
  readonly baseName: string;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number;
  private readonly variants = new Map<string, Variant>();

  constructor(options: ServedModelOptions) {
    this.baseName = options.servedName ?? basename(options.modelDir.replace(/\/+$/, ""));
    const names = [this.baseName, ...(options.lora ?? []).map((l) => l.name), ...(options.steer ?? []).map((s) => s.name)];
    const seen = new Set<string>();
    for (const name of names) {
      if (!NAME.test(name))
        throw new ServeConfigError({ message: `model name ${JSON.stringify(name)} must be 1-128 letters, digits or ._:/-` });
      if (seen.has(name))
        throw new ServeConfigError({
          message: `model name ${JSON.stringify(name)} is given twice (base, --lora and --steer names must differ)`,
        });
      seen.add(name);
    }
    this.tokenizer = ChatTokenizer.fromDir(options.modelDir);
    this.model = loadModel(options.modelDir, { dtype: options.dtype ?? "f32", device: options.device ?? "cpu" });
    try {
      this.variants.set(this.baseName, { kind: "base" });
      for (const l of options.lora ?? [])
        this.variants.set(l.name, { kind: "lora", adapters: loadPeftAdapters(l.dir, this.model), dir: l.dir });
      for (const s of options.steer ?? []) {
        const vector = loadSteeringVector(s.file, this.model.decoder, s.alpha === undefined ? {} : { alpha: s.alpha });
        this.variants.set(s.name, { kind: "steer", vector, file: s.file });
      }
    } catch (error) {
      this.dispose();
      throw error;
    }
    this.eosTokenIds = this.tokenizer.endOfTurnIds(this.model.eosTokenIds);
    this.padTokenId = this.tokenizer.padTokenId ?? this.eosTokenIds[0] ?? 0;
  }

  get names(): string[] {
    return [...this.variants.keys()];
  }

  has(name: string): boolean {
    return this.variants.has(name);
  }

  /** What `name` is, for /v1/models (parent: the base model for adapters and steering). */
  describe(name: string): { kind: string; parent: string | null; source: string | null } {
    const v = this.variants.get(name);
    if (!v) throw new RangeError(`no served model ${name}`);
    return v.kind === "base"
      ? { kind: "base", parent: null, source: null }
      : { kind: v.kind, parent: this.baseName, source: v.kind === "lora" ? v.dir : v.file };
  }

  /** Attaches what `name` needs to the decoder; the returned function detaches it. */
  activate(name: string): () => void {
    const v = this.variants.get(name);
    if (!v) throw new RangeError(`no served model ${name}`);
    const decoder = this.model.decoder;
    if (v.kind === "base") return () => {};
    if (v.kind === "lora") {
      const attached: LoraAdapter[] = [];
      try {
        for (const a of v.adapters) {
          decoder.adapters.attach(a);
          attached.push(a);
        }
      } catch (error) {
        for (const a of attached) decoder.adapters.detach(a);
        throw error;
      }
      return () => {
        for (const a of attached) decoder.adapters.detach(a);
      };
    }
    const handle = v.vector.attach(decoder);
    return () => handle.remove();
  }

  dispose(): void {
    for (const v of this.variants.values()) {
      if (v.kind === "lora") for (const a of v.adapters) a.dispose();
      if (v.kind === "steer") v.vector.dispose();
    }
    this.variants.clear();
    this.model?.dispose();
  }
}
