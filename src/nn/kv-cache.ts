/**
 * Key/value cache for incremental decoding: per layer, preallocated [batch, kv_heads, capacity, d_head]
 * buffers written in place (grown by doubling when full); attention reads a narrow view of the filled
 * part. Owns its tensors: dispose() (or `using`) frees them.
 */
import { cat, keep, type Tensor, tidy, zeros } from "../tensor/index.js";

export class KvCache {
  private keys: (Tensor | null)[];
  private values: (Tensor | null)[];
  /** Positions stored so far (equal for every layer once a forward pass completes). */
  length = 0;
  private pending = 0;

  constructor(
    readonly numLayers: number,
    private capacity: number,
  ) {
    this.keys = new Array(numLayers).fill(null);
    this.values = new Array(numLayers).fill(null);
  }

  /**
   * Appends k, v [batch, kv_heads, new, d_head] for `layer` at the current length and returns views of
   * everything stored for that layer [batch, kv_heads, length + new, d_head].
   */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const fresh = k.size(2);
    const needed = this.length + fresh;
    if (this.keys[layer] === null) {
      const shape = [k.size(0), k.size(1), Math.max(this.capacity, needed), k.size(3)];
      this.keys[layer] = keep(zeros(shape, { dtype: k.dtype, device: k.device }));
      this.values[layer] = keep(zeros(shape, { dtype: v.dtype, device: v.device }));
    } else if (needed > this.keys[layer]!.size(2)) {
      this.grow(layer, Math.max(needed, 2 * this.keys[layer]!.size(2)));
    }
    const keys = this.keys[layer]!;
    const values = this.values[layer]!;
    tidy(() => {
      keys.narrow(2, this.length, fresh).copy_(k);
      values.narrow(2, this.length, fresh).copy_(v);
    });
    this.pending = fresh;
    return { k: keys.narrow(2, 0, needed), v: values.narrow(2, 0, needed) };
  }

  /** Marks the positions appended by the last forward pass as stored. */
  commit(): void {
    this.length += this.pending;
    this.pending = 0;
  }

  private grow(layer: number, capacity: number): void {
    for (const store of [this.keys, this.values]) {
      const old = store[layer]!;
      const extra = tidy(() =>
        zeros([old.size(0), old.size(1), capacity - old.size(2), old.size(3)], { dtype: old.dtype, device: old.device }),
      );
      store[layer] = keep(tidy(() => cat([old, extra], 2)));
      extra.dispose();
      old.dispose();
    }
    this.capacity = capacity;
  }

  /** A cache whose batch rows are `rows` of this one (e.g. each prompt repeated per sample). */
  selectRows(rows: Tensor): KvCache {
    const out = new KvCache(this.numLayers, this.capacity);
    out.length = this.length;
    for (let layer = 0; layer < this.numLayers; layer++) {
      const k = this.keys[layer];
      const v = this.values[layer];
      if (k && v) {
        out.keys[layer] = keep(tidy(() => k.indexSelect(0, rows.to(k.device))));
        out.values[layer] = keep(tidy(() => v.indexSelect(0, rows.to(v.device))));
      }
    }
    return out;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(null);
    this.values.fill(null);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
