/**
 * LoRA with PEFT's semantics: for each targeted linear module, y = W x + s * B (A dropout(x)) with
 * s = alpha / r (or alpha / sqrt(r) with rsLoRA); A Kaiming-uniform (bound 1/sqrt(in)) and B zero at
 * init (a non-zero init for tests); targets by module-name suffix or a full-match regex, optionally
 * only in `layersToTransform`; merge / unmerge into the base weights. Adapters own their tensors.
 */
import { Data } from "effect";
import { linearModules } from "../nn/linear-modules.js";
import type { DecoderSpec } from "../nn/spec.js";
import { keep, matmul, noGrad, rand, type Tensor, TensorScope, tidy, zeros } from "../tensor/index.js";

/** [out, in] of every linear module by full name: the one table in src/nn/linear-modules.ts. */
export { linearModules };

/** A LoRA configuration that cannot make an adapter (r not a positive integer, no module targeted). */
export class LoraConfigError extends Data.TaggedError("LoraConfigError")<{ readonly message: string }> {}

export interface LoraConfig {
  r: number;
  alpha: number;
  useRslora?: boolean;
  dropout?: number;
  /** Module-name suffixes (e.g. ["q_proj", "down_proj"]) or one regex matched against the full name. */
  targetModules: readonly string[] | string;
  /** Only these layer indices (default all). */
  layersToTransform?: readonly number[] | null;
}

export interface LoraModule {
  /** [r, in] */
  A: Tensor;
  /** [out, r] */
  B: Tensor;
}

/** Whether PEFT would put an adapter on `module` for this config. */
export function isTarget(module: string, config: LoraConfig): boolean {
  const layer = Number(/^model\.layers\.(\d+)\./.exec(module)?.[1] ?? -1);
  if (config.layersToTransform && config.layersToTransform.length > 0 && !config.layersToTransform.includes(layer)) return false;
  if (typeof config.targetModules === "string") return new RegExp(`^(?:${config.targetModules})$`).test(module);
  return config.targetModules.some((t) => module === t || module.endsWith(`.${t}`));
}

export class LoraAdapter {
  /** Applied in forward passes unless disabled or merged. */
  enabled = true;
  private mergedInto: Map<string, Tensor> | null = null;

  constructor(
    readonly name: string,
    readonly config: LoraConfig,
    readonly modules: Map<string, LoraModule>,
  ) {}

  get scale(): number {
    return this.config.useRslora ? this.config.alpha / Math.sqrt(this.config.r) : this.config.alpha / this.config.r;
  }

  get merged(): boolean {
    return this.mergedInto !== null;
  }

  /** Creates an adapter for `spec` with PEFT's initialisation (B = 0), or random B for tests. */
  static create(
    spec: DecoderSpec,
    config: LoraConfig,
    options: { name?: string; initB?: "zeros" | "random"; device?: Tensor["device"] } = {},
  ): LoraAdapter {
    if (!(config.r >= 1) || !Number.isInteger(config.r))
      throw new LoraConfigError({ message: `LoRA r must be a positive integer, got ${config.r}` });
    const modules = new Map<string, LoraModule>();
    const scope = new TensorScope(null, true);
    try {
      scope.run(() => {
        for (const [module, [out, inp]] of linearModules(spec)) {
          if (!isTarget(module, config)) continue;
          const bound = 1 / Math.sqrt(inp); // kaiming_uniform_(a=sqrt(5)) on [r, in]
          const A = rand([config.r, inp], { device: options.device })
            .mul(2 * bound)
            .sub(bound)
            .requiresGrad_();
          const B =
            options.initB === "random"
              ? rand([out, config.r], { device: options.device })
                  .mul(2 * bound)
                  .sub(bound)
                  .requiresGrad_()
              : zeros([out, config.r], { device: options.device }).requiresGrad_();
          modules.set(module, { A, B });
        }
      });
      // Kept only once every module exists: a failure half way frees them all with the scope.
      for (const m of modules.values()) (keep(m.A), keep(m.B));
    } finally {
      scope.close();
    }
    if (modules.size === 0)
      throw new LoraConfigError({ message: `LoRA config targets no module (target_modules ${JSON.stringify(config.targetModules)})` });
    return new LoraAdapter(options.name ?? "default", config, modules);
  }

  /** The trainable tensors (A and B of every module). */
  parameters(): Tensor[] {
    return [...this.modules.values()].flatMap((m) => [m.A, m.B]);
  }

  /** s * B A [out, in] for one module (the weight update this adapter stands for). */
  delta(module: string): Tensor {
    const m = this.modules.get(module);
    if (!m) throw new RangeError(`adapter ${this.name} has no module ${module}`);
    return tidy(() => matmul(m.B, m.A).mul(this.scale));
  }

  /** Adds s * B A into the base weights (`weights` by module name) and stops applying the adapter separately. */
  merge(weights: ReadonlyMap<string, Tensor>): void {
    if (this.mergedInto) return;
    noGrad(() => {
      for (const module of this.modules.keys()) {
        const w = weights.get(`${module}.weight`);
        if (!w) throw new RangeError(`no base weight ${module}.weight to merge into`);
        tidy(() => {
          w.add_(this.delta(module).to(w.dtype));
        });
      }
    });
    this.mergedInto = new Map(weights);
  }

  /** Subtracts the merged update again. */
  unmerge(): void {
    const weights = this.mergedInto;
    if (!weights) return;
    noGrad(() => {
      for (const module of this.modules.keys()) {
        const w = weights.get(`${module}.weight`)!;
        tidy(() => {
          w.sub_(this.delta(module).to(w.dtype));
        });
      }
    });
    this.mergedInto = null;
  }

  dispose(): void {
    for (const m of this.modules.values()) {
      m.A.dispose();
      m.B.dispose();
    }
    this.modules.clear();
  }
  /** Same as dispose(), for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
