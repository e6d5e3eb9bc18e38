/**
 * Hook registration: functions attached to hook points that see (and may replace) the activation
 * during every forward pass, generation included. Registration is scoped: `add` returns a handle whose
 * `remove()` detaches it; `withHooks` removes on exit, also on throw; `hookScope` is the same as an
 * Effect resource. A point with no hook costs one Map lookup.
 */
import { Effect, type Scope } from "effect";
import type { Tensor } from "../tensor/index.js";
import type { HookPoint } from "./points.js";

export interface HookContext {
  readonly point: HookPoint;
  /** Layer index, or -1 for embed / final_norm. */
  readonly layer: number;
}

/** Sees the activation; returning a tensor replaces it downstream (return nothing to observe only). */
export type HookFn = (activation: Tensor, context: HookContext) => Tensor | void;

export interface HookHandle {
  /** Detaches the hook (idempotent). */
  remove(): void;
  /** Same as remove(), for `using`. */
  [Symbol.dispose](): void;
}

export class HookRegistry {
  private readonly hooks = new Map<string, HookFn[]>();

  constructor(private readonly validate: (point: string) => boolean) {}

  /** Attaches `fn` at `point` (after any already there). */
  add(point: HookPoint, fn: HookFn): HookHandle {
    if (!this.validate(point)) throw new TypeError(`unknown hook point ${JSON.stringify(point)}`);
    const list = this.hooks.get(point) ?? [];
    list.push(fn);
    this.hooks.set(point, list);
    let removed = false;
    const remove = (): void => {
      if (removed) return;
      removed = true;
      const current = this.hooks.get(point);
      if (!current) return;
      const index = current.indexOf(fn);
      if (index >= 0) current.splice(index, 1);
      if (current.length === 0) this.hooks.delete(point);
    };
    return { remove, [Symbol.dispose]: remove };
  }

  get size(): number {
    return this.hooks.size;
  }

  /** Whether `point` names a hook point of this model. */
  accepts(point: string): point is HookPoint {
    return this.validate(point);
  }

  /** Whether any hook is attached at `point`. */
  has(point: HookPoint): boolean {
    return this.hooks.has(point);
  }

  /** Runs the hooks of `point` in order on `x`; returns the (possibly replaced) activation. */
  run(point: HookPoint, layer: number, x: Tensor): Tensor {
    const list = this.hooks.get(point);
    if (list === undefined) return x;
    let current = x;
    for (const fn of list) {
      const out = fn(current, { point, layer });
      if (out !== undefined) current = out;
    }
    return current;
  }

  /** Runs `fn` with `hooks` attached, detaching them afterwards (also on throw). */
  withHooks<T>(hooks: readonly (readonly [HookPoint, HookFn])[], fn: () => T): T {
    const handles = hooks.map(([point, hook]) => this.add(point, hook));
    try {
      return fn();
    } finally {
      for (const handle of handles) handle.remove();
    }
  }

  /** Attaches `fn` at `point` for the lifetime of the enclosing Effect scope. */
  hookScope(point: HookPoint, fn: HookFn): Effect.Effect<HookHandle, never, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.sync(() => this.add(point, fn)),
      (handle) => Effect.sync(() => handle.remove()),
    );
  }
}
