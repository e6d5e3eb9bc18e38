/**
 * Deterministic tensor lifetimes. A TensorScope tracks every tensor created while it is current and
 * disposes them on close, except the ones returned from `tidy` (handed to the enclosing scope) and
 * the ones passed to `keep` (untracked from then on). Scopes are synchronous: do not await inside
 * `tidy`/`run`. The GC finalizer of a handle is only a safety net.
 */
import { Effect, type Scope } from "effect";
import { native } from "../native/addon.js";
import { adoptByGc, isKept, isReleased, isTensor, markKept } from "./internal.js";
import type { Tensor } from "./tensor.js";

/** What a tensor offers its owner: free it now, or ask whether it is freed. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

let current: TensorScope | null = null;

function setCurrent(scope: TensorScope | null): void {
  current = scope;
}

/**
 * Tensors created outside any scope. Native handles are born without a GC finalizer; those still
 * alive when the current job ends (a microtask), or when many have piled up in a synchronous loop,
 * get one. Tensors disposed before then never pay for it.
 */
let unowned: Tensor[] = [];
const FLUSH_AT = 256;

function flushUnowned(): void {
  const pending = unowned;
  unowned = [];
  for (const tensor of pending) if (!isKept(tensor) && !isReleased(tensor)) adoptByGc(tensor);
}

/** Registers a tensor created outside any scope (called by the Tensor constructor). */
export function trackUnowned(tensor: Tensor): void {
  if (unowned.length === 0) queueMicrotask(flushUnowned);
  unowned.push(tensor);
  if (unowned.length >= FLUSH_AT) flushUnowned();
}

/** Frees the tensors of scopes that were dropped without close() (a safety net, like the handles'). */
const unclosedScopes = new FinalizationRegistry<{ tensors: Tensor[] }>((held) => {
  for (const tensor of held.tensors) if (!isKept(tensor)) tensor.dispose();
});

export class TensorScope {
  private held: { tensors: Tensor[] } = { tensors: [] };
  private closed = false;

  /**
   * @param parent scope that receives the survivors of close(); null hands them to the caller.
   * @param guaranteedClose internal: the creator closes it in a finally block (tidy), so no GC net.
   */
  constructor(
    private readonly parent: TensorScope | null = null,
    guaranteedClose = false,
  ) {
    if (!guaranteedClose) unclosedScopes.register(this, this.held, this);
  }

  private get tensors(): Tensor[] {
    return this.held.tensors;
  }

  /** The scope new tensors are registered in, or null outside any scope. */
  static get current(): TensorScope | null {
    return current;
  }

  /** Registers a tensor; called by the Tensor constructor for the current scope. */
  track(tensor: Tensor): void {
    if (this.closed) {
      tensor.dispose();
      throw new Error("emlab: tensor created in a scope that is already closed");
    }
    this.tensors.push(tensor);
  }

  /** Runs `fn` with this scope current (synchronously) and returns its result untouched. */
  run<T>(fn: () => T): T {
    if (this.closed) throw new Error("emlab: run() on a tensor scope that is already closed");
    const previous = current;
    setCurrent(this);
    try {
      const result = fn();
      rejectPromise(result);
      return result;
    } finally {
      setCurrent(previous);
    }
  }

  /** Number of tensors this scope would dispose now. */
  get size(): number {
    return this.tensors.length;
  }

  /** Disposes every tracked tensor except `survivors` (which move to the parent scope) and kept ones. */
  close(survivors: ReadonlySet<Tensor> = new Set()): void {
    if (this.closed) return;
    this.closed = true;
    unclosedScopes.unregister(this);
    const tensors = this.tensors;
    this.held.tensors = [];
    for (const tensor of tensors) {
      if (isKept(tensor)) continue;
      if (!survivors.has(tensor)) tensor.dispose();
      else if (this.parent) this.parent.track(tensor);
      else adoptByGc(tensor);
    }
  }
}

function rejectPromise(value: unknown): void {
  if (value !== null && typeof value === "object" && typeof (value as { then?: unknown }).then === "function") {
    throw new TypeError("emlab: tensor scopes are synchronous; do not return a Promise from tidy()/run()");
  }
}

/** Collects the tensors inside a returned value (a tensor, arrays, plain objects, Maps). */
function collect(value: unknown, into: Set<Tensor>, seen: Set<unknown>): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) collect(item, into, seen);
  } else if (value instanceof Map) {
    for (const item of value.values()) collect(item, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) collect(item, into, seen);
  }
}

/**
 * Runs `fn` in a new scope: tensors created inside are disposed when it returns, except those in
 * the returned value, which belong to the enclosing scope. On a throw every tensor created inside
 * is disposed.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new TensorScope(current, true);
  let result: T;
  try {
    result = scope.run(fn);
  } catch (error) {
    scope.close();
    throw error;
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors, new Set());
  scope.close(survivors);
  return result;
}

/** Marks tensors as escaping every scope: no scope will dispose them; the caller owns them. */
export function keep<T extends Tensor>(tensor: T): T {
  if (!isKept(tensor)) {
    markKept(tensor);
    adoptByGc(tensor);
  }
  return tensor;
}

/** Live native tensor handles (created and neither disposed nor garbage-collected). */
export function liveTensorCount(): number {
  return native.liveCount();
}

/**
 * A tensor scope as an Effect resource: tensors created through `scope.run(...)` are disposed when
 * the enclosing Effect `Scope` closes (success, failure or interruption).
 */
export const tensorScope: Effect.Effect<TensorScope, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => new TensorScope(null, true)),
  (scope) => Effect.sync(() => scope.close()),
);
