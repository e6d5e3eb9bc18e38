/**
 * The Tensor class: one native handle, its metadata, host reads and the method form of every op.
 * Ops are synchronous and allocate a new tensor (registered in the current TensorScope); in-place
 * variants end in `_` and return `this`. Free functions over several tensors live in functional.ts.
 */
import { type Handle, native, type Operand } from "../native/addon.js";
import { type Device, type DType, dtypeCode, dtypeFromCode, type HostArray, hostArray, normalizeDevice } from "./dtype.js";
import { handleOf, handleOrNull, installTensorInternals } from "./internal.js";
import { type Disposable, TensorScope, trackUnowned } from "./scope.js";

/** A tensor or a JS scalar (numbers that are integers act like Python ints in type promotion). */
export type TensorLike = Tensor | number | bigint | boolean;
/** Nested JS arrays as returned by `toList()`. */
export type NestedList = number | bigint | boolean | NestedList[];

function codes(names: readonly string[], wanted: readonly string[], table: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of wanted) {
    const code = names.indexOf(name);
    if (code < 0) throw new Error(`emlab: the native addon lacks ${table} op ${name}; rebuild it (npm run build:native)`);
    out[name] = code;
  }
  return out;
}

const U = codes(native.unaryOps, native.unaryOps, "unary");
const B = codes(native.binaryOps, native.binaryOps, "binary");
const R = codes(native.reduceOps, native.reduceOps, "reduce");

const operand = (x: TensorLike): Operand => (x instanceof Tensor ? handleOf(x) : x);
const dimList = (dim: number | readonly number[] | undefined): readonly number[] | null =>
  dim === undefined ? null : typeof dim === "number" ? [dim] : dim;
const shapeArgs = (args: readonly (number | readonly number[])[]): readonly number[] =>
  args.length === 1 && Array.isArray(args[0]) ? (args[0] as readonly number[]) : (args as readonly number[]);

export class Tensor implements Disposable {
  /**
   * The native handle. Replaced, never reused, when the tensor leaves its scope and gets a GC
   * finalizer (adoptByGc). Private at run time: code outside this class reads it through
   * `handleOf` (src/tensor/internal.ts, not exported from the public API).
   */
  #handle: Handle;
  /** Set by `keep()`: no scope disposes this tensor. */
  #kept = false;
  /** Set by dispose(). */
  #released = false;

  static {
    installTensorInternals({
      handleOf: (tensor) => tensor.#handle,
      isTensor: (value): value is Tensor => typeof value === "object" && value !== null && #handle in value,
      isKept: (tensor) => tensor.#kept,
      markKept: (tensor) => {
        tensor.#kept = true;
      },
      isReleased: (tensor) => tensor.#released,
      adoptByGc: (tensor) => {
        tensor.#handle = native.adoptByGc(tensor.#handle);
      },
    });
  }

  /** Wraps a native handle; the tensor joins the current scope (or the GC's care outside scopes). */
  constructor(handle: Handle) {
    this.#handle = handle;
    const scope = TensorScope.current;
    if (scope !== null) scope.track(this);
    else trackUnowned(this);
  }

  // ---- metadata -------------------------------------------------------------------------------
  get shape(): number[] {
    return native.shape(this.#handle);
  }
  get dtype(): DType {
    return dtypeFromCode(native.dtype(this.#handle));
  }
  get device(): Device {
    return native.device(this.#handle) as Device;
  }
  get numel(): number {
    return native.numel(this.#handle);
  }
  get ndim(): number {
    return native.dim(this.#handle);
  }
  get isContiguous(): boolean {
    return native.isContiguous(this.#handle);
  }
  /** Size of one dim (negative dims count from the end). */
  size(dim: number): number {
    const shape = this.shape;
    const d = dim < 0 ? shape.length + dim : dim;
    const n = shape[d];
    if (n === undefined) throw new RangeError(`dim ${dim} out of range for a ${shape.length}-d tensor`);
    return n;
  }

  // ---- lifetime -------------------------------------------------------------------------------
  /** Frees the native tensor now. Idempotent. */
  dispose(): void {
    this.#released = true;
    native.dispose(this.#handle);
  }
  /** `using t = ...` frees the tensor at the end of the block (same as dispose()). */
  [Symbol.dispose](): void {
    this.dispose();
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.#handle);
  }

  // ---- conversion -----------------------------------------------------------------------------
  /** Converts to a dtype and/or a device (a copy only when something changes). */
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    if (typeof target === "string") {
      const isDevice = target === "cpu" || target.startsWith("cuda");
      return new Tensor(
        isDevice
          ? native.to(this.#handle, null, normalizeDevice(target), false)
          : native.to(this.#handle, dtypeCode(target as DType), null, false),
      );
    }
    return new Tensor(
      native.to(
        this.#handle,
        target.dtype === undefined ? null : dtypeCode(target.dtype),
        target.device === undefined ? null : normalizeDevice(target.device),
        false,
      ),
    );
  }
  cpu(): Tensor {
    return this.to("cpu");
  }
  float(): Tensor {
    return this.to("f32");
  }
  contiguous(): Tensor {
    return new Tensor(native.contiguous(this.#handle));
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.#handle));
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.#handle));
  }
  /** A second handle on the same tensor (no copy), e.g. to keep a result past its scope. */
  share(): Tensor {
    return new Tensor(native.share(this.#handle));
  }

  // ---- host reads -----------------------------------------------------------------------------
  /** The data as a typed array (contiguous copy; bf16/f16 as Float32Array, bool as Uint8Array). */
  toArray(): HostArray {
    return hostArray(this.dtype, native.toBytes(this.#handle));
  }
  /** The single value of a one-element tensor. */
  item(): number | bigint | boolean {
    return native.item(this.#handle);
  }
  /** The single value as a JS number (int64 converted). */
  toNumber(): number {
    const value = native.item(this.#handle);
    return typeof value === "number" ? value : Number(value);
  }
  /** The data as nested JS arrays. */
  toList(): NestedList {
    const shape = this.shape;
    const dtype = this.dtype;
    const flat = Array.from(this.toArray() as ArrayLike<number | bigint>, (v) => (dtype === "bool" ? v !== 0 : v));
    const build = (dim: number, offset: number): [NestedList, number] => {
      if (dim === shape.length) return [flat[offset] as NestedList, offset + 1];
      const out: NestedList[] = [];
      for (let i = 0; i < (shape[dim] as number); i++) {
        const [child, next] = build(dim + 1, offset);
        out.push(child);
        offset = next;
      }
      return [out, offset];
    };
    return build(0, 0)[0];
  }
  toString(): string {
    return this.isDisposed ? "Tensor(disposed)" : `Tensor(shape=[${this.shape.join(", ")}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- elementwise ----------------------------------------------------------------------------
  /** this + alpha * other */
  add(other: TensorLike, alpha?: number): Tensor {
    if (alpha !== undefined) return new Tensor(native.addScaled(this.#handle, operand(other), alpha));
    return new Tensor(
      other instanceof Tensor ? native.addTT(this.#handle, other.#handle) : native.binary(B.add!, this.#handle, other, false),
    );
  }
  sub(other: TensorLike): Tensor {
    return new Tensor(
      other instanceof Tensor ? native.subTT(this.#handle, other.#handle) : native.binary(B.sub!, this.#handle, other, false),
    );
  }
  /** other - this */
  rsub(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.sub!, this.#handle, operand(other), true));
  }
  mul(other: TensorLike): Tensor {
    return new Tensor(
      other instanceof Tensor ? native.mulTT(this.#handle, other.#handle) : native.binary(B.mul!, this.#handle, other, false),
    );
  }
  div(other: TensorLike): Tensor {
    return new Tensor(
      other instanceof Tensor ? native.divTT(this.#handle, other.#handle) : native.binary(B.div!, this.#handle, other, false),
    );
  }
  /** other / this */
  rdiv(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.div!, this.#handle, operand(other), true));
  }
  pow(exponent: TensorLike): Tensor {
    return new Tensor(native.binary(B.pow!, this.#handle, operand(exponent), false));
  }
  maximum(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.maximum!, this.#handle, operand(other), false));
  }
  minimum(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.minimum!, this.#handle, operand(other), false));
  }
  remainder(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.remainder!, this.#handle, operand(other), false));
  }
  floorDivide(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.floorDivide!, this.#handle, operand(other), false));
  }
  atan2(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.atan2!, this.#handle, operand(other), false));
  }
  eq(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.eq!, this.#handle, operand(other), false));
  }
  ne(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.ne!, this.#handle, operand(other), false));
  }
  lt(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.lt!, this.#handle, operand(other), false));
  }
  le(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.le!, this.#handle, operand(other), false));
  }
  gt(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.gt!, this.#handle, operand(other), false));
  }
  ge(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.ge!, this.#handle, operand(other), false));
  }
  logicalAnd(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.logicalAnd!, this.#handle, operand(other), false));
  }
  logicalOr(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.logicalOr!, this.#handle, operand(other), false));
  }
  logicalXor(other: TensorLike): Tensor {
    return new Tensor(native.binary(B.logicalXor!, this.#handle, operand(other), false));
  }
  neg(): Tensor {
    return new Tensor(native.unary(U.neg!, this.#handle));
  }
  exp(): Tensor {
    return new Tensor(native.unary(U.exp!, this.#handle));
  }
  log(): Tensor {
    return new Tensor(native.unary(U.log!, this.#handle));
  }
  sqrt(): Tensor {
    return new Tensor(native.unary(U.sqrt!, this.#handle));
  }
  rsqrt(): Tensor {
    return new Tensor(native.unary(U.rsqrt!, this.#handle));
  }
  abs(): Tensor {
    return new Tensor(native.unary(U.abs!, this.#handle));
  }
  tanh(): Tensor {
    return new Tensor(native.unary(U.tanh!, this.#handle));
  }
  sigmoid(): Tensor {
    return new Tensor(native.unary(U.sigmoid!, this.#handle));
  }
  silu(): Tensor {
    return new Tensor(native.unary(U.silu!, this.#handle));
  }
  relu(): Tensor {
    return new Tensor(native.unary(U.relu!, this.#handle));
  }
  /** GELU: exact (erf) by default, or the tanh approximation. */
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return new Tensor(native.unary(approximate === "tanh" ? U.geluTanh! : U.gelu!, this.#handle));
  }
  sin(): Tensor {
    return new Tensor(native.unary(U.sin!, this.#handle));
  }
  cos(): Tensor {
    return new Tensor(native.unary(U.cos!, this.#handle));
  }
  logicalNot(): Tensor {
    return new Tensor(native.unary(U.logicalNot!, this.#handle));
  }
  floor(): Tensor {
    return new Tensor(native.unary(U.floor!, this.#handle));
  }
  ceil(): Tensor {
    return new Tensor(native.unary(U.ceil!, this.#handle));
  }
  round(): Tensor {
    return new Tensor(native.unary(U.round!, this.#handle));
  }
  sign(): Tensor {
    return new Tensor(native.unary(U.sign!, this.#handle));
  }
  reciprocal(): Tensor {
    return new Tensor(native.unary(U.reciprocal!, this.#handle));
  }
  log1p(): Tensor {
    return new Tensor(native.unary(U.log1p!, this.#handle));
  }
  expm1(): Tensor {
    return new Tensor(native.unary(U.expm1!, this.#handle));
  }
  square(): Tensor {
    return new Tensor(native.unary(U.square!, this.#handle));
  }
  erf(): Tensor {
    return new Tensor(native.unary(U.erf!, this.#handle));
  }
  isnan(): Tensor {
    return new Tensor(native.unary(U.isnan!, this.#handle));
  }
  isfinite(): Tensor {
    return new Tensor(native.unary(U.isfinite!, this.#handle));
  }
  /** Elements where `mask` is true replaced by `value`. */
  maskedFill(mask: Tensor, value: TensorLike): Tensor {
    return new Tensor(native.maskedFill(this.#handle, mask.#handle, operand(value)));
  }
  clamp(min: number | null, max: number | null = null): Tensor {
    return new Tensor(native.clamp(this.#handle, min, max));
  }
  lerp(end: Tensor, weight: number): Tensor {
    return new Tensor(native.lerp(this.#handle, end.#handle, weight));
  }

  // ---- in place (return this) -----------------------------------------------------------------
  add_(other: TensorLike, alpha?: number): this {
    native.add_(this.#handle, operand(other), alpha);
    return this;
  }
  sub_(other: TensorLike, alpha?: number): this {
    native.sub_(this.#handle, operand(other), alpha);
    return this;
  }
  mul_(other: TensorLike): this {
    native.mul_(this.#handle, operand(other));
    return this;
  }
  div_(other: TensorLike): this {
    native.div_(this.#handle, operand(other));
    return this;
  }
  copy_(source: Tensor): this {
    native.copy_(this.#handle, source.#handle);
    return this;
  }
  zero_(): this {
    native.zero_(this.#handle);
    return this;
  }
  fill_(value: number | bigint | boolean): this {
    native.fill_(this.#handle, value);
    return this;
  }
  clamp_(min: number | null, max: number | null = null): this {
    native.clamp_(this.#handle, min, max);
    return this;
  }

  // ---- reductions (dim undefined = all dims) --------------------------------------------------
  sum(dim?: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.reduce(R.sum!, this.#handle, dimList(dim), keepdim));
  }
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.reduce(R.mean!, this.#handle, dimList(dim), keepdim));
  }
  /** Maximum values (no indices); see `maxWithIndices`. */
  max(dim?: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.reduce(R.amax!, this.#handle, dimList(dim), keepdim));
  }
  min(dim?: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.reduce(R.amin!, this.#handle, dimList(dim), keepdim));
  }
  maxWithIndices(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = native.maxDim(this.#handle, dim, keepdim);
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  minWithIndices(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = native.minDim(this.#handle, dim, keepdim);
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.#handle, dim ?? null, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmin(this.#handle, dim ?? null, keepdim));
  }
  logsumexp(dim: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.reduce(R.logsumexp!, this.#handle, dimList(dim), keepdim));
  }
  prod(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.prod(this.#handle, dim ?? null, keepdim));
  }
  all(dim?: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.reduce(R.all!, this.#handle, dimList(dim), keepdim));
  }
  any(dim?: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.reduce(R.any!, this.#handle, dimList(dim), keepdim));
  }
  /** Vector p-norm over `dim` (all elements by default); p = Infinity for max |x|. */
  norm(p = 2, dim?: number | readonly number[], keepdim = false): Tensor {
    return new Tensor(native.norm(this.#handle, p, dimList(dim), keepdim));
  }
  var(dim?: number | readonly number[], options: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.var(this.#handle, dimList(dim), options.unbiased ?? true, options.keepdim ?? false));
  }
  std(dim?: number | readonly number[], options: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.std(this.#handle, dimList(dim), options.unbiased ?? true, options.keepdim ?? false));
  }
  cumsum(dim: number): Tensor {
    return new Tensor(native.cumsum(this.#handle, dim));
  }

  // ---- linear algebra and normalisation -------------------------------------------------------
  matmul(other: Tensor): Tensor {
    return new Tensor(native.matmul(this.#handle, other.#handle));
  }
  bmm(other: Tensor): Tensor {
    return new Tensor(native.bmm(this.#handle, other.#handle));
  }
  outer(other: Tensor): Tensor {
    return new Tensor(native.outer(this.#handle, other.#handle));
  }
  softmax(dim: number): Tensor {
    return new Tensor(native.softmax(this.#handle, dim));
  }
  logSoftmax(dim: number): Tensor {
    return new Tensor(native.logSoftmax(this.#handle, dim));
  }

  // ---- shape ----------------------------------------------------------------------------------
  reshape(...shape: (number | readonly number[])[]): Tensor {
    return new Tensor(native.reshape(this.#handle, shapeArgs(shape)));
  }
  view(...shape: (number | readonly number[])[]): Tensor {
    return new Tensor(native.view(this.#handle, shapeArgs(shape)));
  }
  permute(...dims: (number | readonly number[])[]): Tensor {
    return new Tensor(native.permute(this.#handle, shapeArgs(dims)));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(native.transpose(this.#handle, dim0, dim1));
  }
  /** Transpose of the last two dims. */
  get mT(): Tensor {
    return this.transpose(-2, -1);
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.#handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.#handle, dim ?? null));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(native.flatten(this.#handle, startDim, endDim));
  }
  expand(...shape: (number | readonly number[])[]): Tensor {
    return new Tensor(native.expand(this.#handle, shapeArgs(shape)));
  }
  repeat(...repeats: (number | readonly number[])[]): Tensor {
    return new Tensor(native.repeat(this.#handle, shapeArgs(repeats)));
  }
  repeatInterleave(repeats: number, dim: number): Tensor {
    return new Tensor(native.repeatInterleave(this.#handle, repeats, dim));
  }
  flip(dims: readonly number[]): Tensor {
    return new Tensor(native.flip(this.#handle, dims));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(native.narrow(this.#handle, dim, start, length));
  }
  /** x[start:end:step] along `dim` (null bounds = open). */
  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return new Tensor(native.slice(this.#handle, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.#handle, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(native.indexSelect(this.#handle, dim, index.#handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.#handle, dim, index.#handle));
  }
  scatter(dim: number, index: Tensor, source: Tensor): Tensor {
    return new Tensor(native.scatter(this.#handle, dim, index.#handle, source.#handle));
  }
  scatterAdd(dim: number, index: Tensor, source: Tensor): Tensor {
    return new Tensor(native.scatterAdd(this.#handle, dim, index.#handle, source.#handle));
  }
  /** Advanced indexing x[i0, i1, ...]; null keeps a dim whole. */
  index(indices: readonly (Tensor | null)[]): Tensor {
    return new Tensor(
      native.index(
        this.#handle,
        indices.map((t) => handleOrNull(t)),
      ),
    );
  }
  indexPut_(indices: readonly (Tensor | null)[], values: Tensor, accumulate = false): this {
    native.indexPut_(
      this.#handle,
      indices.map((t) => handleOrNull(t)),
      values.#handle,
      accumulate,
    );
    return this;
  }
  /** Pieces of `size` (or the given sizes) along `dim`. */
  split(size: number | readonly number[], dim = 0): Tensor[] {
    return native.split(this.#handle, size, dim).map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return native.chunk(this.#handle, chunks, dim).map((h) => new Tensor(h));
  }
  triu(diagonal = 0): Tensor {
    return new Tensor(native.triu(this.#handle, diagonal));
  }
  tril(diagonal = 0): Tensor {
    return new Tensor(native.tril(this.#handle, diagonal));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = native.topk(this.#handle, k, dim, largest, sorted);
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  sort(dim = -1, descending = false, stable = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = native.sort(this.#handle, dim, descending, stable);
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  argsort(dim = -1, descending = false): Tensor {
    const { values, indices } = this.sort(dim, descending, true);
    values.dispose();
    return indices;
  }
  /** Samples `samples` indices per row from (unnormalised) probabilities. */
  multinomial(samples: number, replacement = false): Tensor {
    return new Tensor(native.multinomial(this.#handle, samples, replacement));
  }

  // ---- autograd -------------------------------------------------------------------------------
  get requiresGrad(): boolean {
    return native.requiresGrad(this.#handle);
  }
  /** Sets requires_grad on a leaf tensor (a non-leaf may only keep `true`, like torch); returns this. */
  requiresGrad_(value = true): this {
    native.setRequiresGrad(this.#handle, value);
    return this;
  }
  /** Back-propagates from this tensor (a scalar unless `grad` is given). */
  backward(grad?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    const createGraph = options.createGraph ?? false;
    native.backward(this.#handle, handleOrNull(grad), options.retainGraph ?? createGraph, createGraph);
  }
  /** The accumulated gradient (a new handle on it), or null. */
  get grad(): Tensor | null {
    const handle = native.grad(this.#handle);
    return handle === null ? null : new Tensor(handle);
  }
  set grad(value: Tensor | null) {
    native.setGrad(this.#handle, handleOrNull(value));
  }
  /** Keeps .grad for a non-leaf tensor. */
  retainGrad(): this {
    native.retainGrad(this.#handle);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.#handle);
  }
}
