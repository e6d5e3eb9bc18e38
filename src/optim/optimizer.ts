/**
 * The optimizer contract and helpers shared by AdamW and SGD: parameter groups with per-group
 * hyper-parameters, zeroing gradients, and state dicts (tensors + JSON) for exact resume.
 */
import { native } from "../native/addon.js";
import { keep, type Tensor, TensorScope, zerosLike } from "../tensor/index.js";
import { handleOf } from "../tensor/internal.js";

/** Parameters with optional per-group overrides of the optimizer's options. */
export interface ParamGroupSpec<O> {
  params: readonly Tensor[];
  options?: Partial<O>;
}

/** A live parameter group; mutate `options.lr` to schedule the learning rate. */
export interface ParamGroup<O> {
  readonly params: readonly Tensor[];
  options: O;
}

/** Serializable optimizer state: JSON-safe metadata plus named tensors (e.g. for safetensors). */
export interface OptimizerState {
  kind: string;
  groups: { options: Record<string, unknown>; size: number }[];
  /** Per parameter (flattened over groups): steps taken, or null before its first update. */
  steps: (number | null)[];
  tensors: Record<string, Tensor>;
}

export interface Optimizer<O> {
  readonly groups: ParamGroup<O>[];
  /** Applies one update from the parameters' current `.grad`. */
  step(): void;
  /** Clears gradients (to none, like torch's default). */
  zeroGrad(): void;
  /** A copy of the state (tensors are clones the caller owns). */
  stateDict(): OptimizerState;
  /** Restores a state produced by `stateDict` for the same parameter layout. */
  loadStateDict(state: OptimizerState): void;
  /** Frees the optimizer's state tensors. */
  dispose(): void;
  /** Same as dispose(), for `using`. */
  [Symbol.dispose](): void;
}

export function makeGroups<O>(params: readonly Tensor[] | readonly ParamGroupSpec<O>[], defaults: O): ParamGroup<O>[] {
  const specs: readonly ParamGroupSpec<O>[] =
    params.length > 0 && "params" in (params[0] as object)
      ? (params as readonly ParamGroupSpec<O>[])
      : [{ params: params as readonly Tensor[] }];
  return specs.map((spec) => ({ params: [...spec.params], options: { ...defaults, ...spec.options } }));
}

export function zeroGrads(groups: readonly ParamGroup<unknown>[]): void {
  for (const group of groups) for (const p of group.params) native.setGrad(handleOf(p), null);
}

/**
 * Runs `fn` outside any tensor scope and keeps its result (optimizer state is long-lived); anything
 * else it creates, and everything on a throw, is disposed.
 */
export function longLived(fn: () => Tensor): Tensor {
  const scope = new TensorScope(null, true);
  try {
    const result = keep(scope.run(fn));
    return result;
  } finally {
    scope.close();
  }
}

/** A long-lived copy of saved state `saved` for parameter `param`; shapes must match exactly. */
export function restoreFor(param: Tensor, saved: Tensor, name: string): Tensor {
  const want = param.shape;
  const got = saved.shape;
  if (want.length !== got.length || want.some((n, i) => n !== got[i])) {
    throw new TypeError(`loadStateDict: ${name} has shape [${got.join(", ")}] but its parameter has [${want.join(", ")}]`);
  }
  return longLived(() => zerosLike(param).copy_(saved));
}

export function checkLayout(state: OptimizerState, kind: string, groups: readonly ParamGroup<unknown>[]): void {
  if (state.kind !== kind) throw new TypeError(`loadStateDict: state is for ${state.kind}, not ${kind}`);
  const sizes = groups.map((g) => g.params.length);
  const stateSizes = state.groups.map((g) => g.size);
  if (sizes.join(",") !== stateSizes.join(",")) {
    throw new TypeError(`loadStateDict: parameter groups [${stateSizes.join(", ")}] do not match [${sizes.join(", ")}]`);
  }
}
