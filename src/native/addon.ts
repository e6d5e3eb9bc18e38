/**
 * The typed surface of the native addon (native/src/*.cc) and its loader. This folder is the only
 * importer of the .node file; everything above it talks to `native` through this interface.
 * Handles are opaque: one handle owns one libtorch tensor until disposed or collected.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTorchError } from "./errors.js";

/** An opaque native tensor handle. */
export type Handle = { readonly __emlabHandle: unique symbol };
/** An opaque native c10d process group (store + backend). */
export type ProcessGroupHandle = { readonly __emlabProcessGroup: unique symbol };
/** A tensor handle or a JS scalar operand. */
export type Operand = Handle | number | bigint | boolean;
type Opt<T> = T | null;

export interface NativeAddon {
  readonly torchVersion: string;
  readonly builtWithCuda: boolean;
  readonly unaryOps: readonly string[];
  readonly binaryOps: readonly string[];
  readonly reduceOps: readonly string[];
  setErrorFactory(factory: (code: string, op: string, message: string, torchMessage: string) => Error): void;

  // creation
  fromBytes(bytes: ArrayBufferView | ArrayBuffer, dtype: number, shape: readonly number[], device: string): Handle;
  scalarTensor(value: number | bigint | boolean, dtype: number, device: string): Handle;
  zeros(shape: readonly number[], dtype: number, device: string): Handle;
  ones(shape: readonly number[], dtype: number, device: string): Handle;
  empty(shape: readonly number[], dtype: number, device: string): Handle;
  full(shape: readonly number[], value: number | bigint | boolean, dtype: number, device: string): Handle;
  arange(start: number, end: number, step: number, dtype: number, device: string): Handle;
  linspace(start: number, end: number, steps: number, dtype: number, device: string): Handle;
  randn(shape: readonly number[], dtype: number, device: string): Handle;
  rand(shape: readonly number[], dtype: number, device: string): Handle;
  randint(low: number, high: number, shape: readonly number[], dtype: number, device: string): Handle;
  eye(n: number, m: number, dtype: number, device: string): Handle;
  zerosLike(x: Handle): Handle;
  onesLike(x: Handle): Handle;
  randnLike(x: Handle): Handle;
  manualSeed(seed: number | bigint): void;
  getRngState(): Handle;
  setRngState(state: Handle): void;

  // metadata, conversion, lifetime, host reads
  shape(x: Handle): number[];
  dtype(x: Handle): number;
  device(x: Handle): string;
  numel(x: Handle): number;
  dim(x: Handle): number;
  isContiguous(x: Handle): boolean;
  to(x: Handle, dtype: Opt<number>, device: Opt<string>, copy: boolean): Handle;
  contiguous(x: Handle): Handle;
  clone(x: Handle): Handle;
  share(x: Handle): Handle;
  dispose(x: Handle): boolean;
  /**
   * New handles have no GC finalizer. This returns a handle on the same tensor that has one (the
   * same handle when it already has one); the old handle must not be used afterwards.
   */
  adoptByGc(x: Handle): Handle;
  isDisposed(x: Handle): boolean;
  liveCount(): number;
  /** Times freed host tensor memory was returned to the kernel (bounded retention, native/src/memory.cc). */
  hostTrimCount(): number;
  /** V8's external-memory counter in bytes (GC-owned tensors are reported there). */
  externalMemory(): number;
  toBytes(x: Handle): ArrayBuffer;
  rawBytes(x: Handle): ArrayBuffer;
  item(x: Handle): number | bigint | boolean;

  // elementwise
  unary(op: number, x: Handle): Handle;
  binary(op: number, a: Handle, b: Operand, reversed: boolean): Handle;
  addTT(a: Handle, b: Handle): Handle;
  subTT(a: Handle, b: Handle): Handle;
  mulTT(a: Handle, b: Handle): Handle;
  divTT(a: Handle, b: Handle): Handle;
  addScaled(a: Handle, b: Operand, alpha: number): Handle;
  where(condition: Handle, a: Operand, b: Operand): Handle;
  maskedFill(x: Handle, mask: Handle, value: Operand): Handle;
  clamp(x: Handle, min: Opt<number>, max: Opt<number>): Handle;
  lerp(a: Handle, b: Handle, weight: number): Handle;
  add_(x: Handle, other: Operand, alpha?: number): void;
  sub_(x: Handle, other: Operand, alpha?: number): void;
  mul_(x: Handle, other: Operand): void;
  div_(x: Handle, other: Operand): void;
  copy_(x: Handle, source: Handle): void;
  zero_(x: Handle): void;
  fill_(x: Handle, value: number | bigint | boolean): void;
  clamp_(x: Handle, min: Opt<number>, max: Opt<number>): void;

  // reductions
  reduce(op: number, x: Handle, dims: Opt<readonly number[]>, keepdim: boolean): Handle;
  prod(x: Handle, dim: Opt<number>, keepdim: boolean): Handle;
  argmax(x: Handle, dim: Opt<number>, keepdim: boolean): Handle;
  argmin(x: Handle, dim: Opt<number>, keepdim: boolean): Handle;
  maxDim(x: Handle, dim: number, keepdim: boolean): [Handle, Handle];
  minDim(x: Handle, dim: number, keepdim: boolean): [Handle, Handle];
  norm(x: Handle, p: number, dims: Opt<readonly number[]>, keepdim: boolean): Handle;
  var(x: Handle, dims: Opt<readonly number[]>, unbiased: boolean, keepdim: boolean): Handle;
  std(x: Handle, dims: Opt<readonly number[]>, unbiased: boolean, keepdim: boolean): Handle;

  // shape and indexing
  reshape(x: Handle, shape: readonly number[]): Handle;
  view(x: Handle, shape: readonly number[]): Handle;
  permute(x: Handle, dims: readonly number[]): Handle;
  transpose(x: Handle, dim0: number, dim1: number): Handle;
  unsqueeze(x: Handle, dim: number): Handle;
  squeeze(x: Handle, dim: Opt<number>): Handle;
  flatten(x: Handle, start: number, end: number): Handle;
  expand(x: Handle, shape: readonly number[]): Handle;
  repeat(x: Handle, repeats: readonly number[]): Handle;
  repeatInterleave(x: Handle, repeats: number, dim: number): Handle;
  flip(x: Handle, dims: readonly number[]): Handle;
  narrow(x: Handle, dim: number, start: number, length: number): Handle;
  slice(x: Handle, dim: number, start: Opt<number>, end: Opt<number>, step: number): Handle;
  select(x: Handle, dim: number, index: number): Handle;
  indexSelect(x: Handle, dim: number, index: Handle): Handle;
  gather(x: Handle, dim: number, index: Handle): Handle;
  scatter(x: Handle, dim: number, index: Handle, source: Handle): Handle;
  scatterAdd(x: Handle, dim: number, index: Handle, source: Handle): Handle;
  index(x: Handle, indices: readonly Opt<Handle>[]): Handle;
  indexPut_(x: Handle, indices: readonly Opt<Handle>[], values: Handle, accumulate: boolean): void;
  cat(xs: readonly Handle[], dim: number): Handle;
  stack(xs: readonly Handle[], dim: number): Handle;
  split(x: Handle, sizes: number | readonly number[], dim: number): Handle[];
  chunk(x: Handle, chunks: number, dim: number): Handle[];
  triu(x: Handle, diagonal: number): Handle;
  tril(x: Handle, diagonal: number): Handle;

  // nn
  matmul(a: Handle, b: Handle): Handle;
  bmm(a: Handle, b: Handle): Handle;
  outer(a: Handle, b: Handle): Handle;
  linear(x: Handle, weight: Handle, bias: Opt<Handle>): Handle;
  /** linear for decode steps (native/src/decode.cc). */
  decodeLinear(x: Handle, weight: Handle, bias: Opt<Handle>): Handle;
  sampleCategorical(scores: Handle): Handle;
  einsum(equation: string, operands: readonly Handle[]): Handle;
  softmax(x: Handle, dim: number): Handle;
  logSoftmax(x: Handle, dim: number): Handle;
  crossEntropy(logits: Handle, target: Handle, weight: Opt<Handle>, reduction: number, ignoreIndex: number, labelSmoothing: number): Handle;
  klDiv(input: Handle, target: Handle, reduction: number, logTarget: boolean): Handle;
  mseLoss(input: Handle, target: Handle, reduction: number): Handle;
  dropout(x: Handle, p: number, train: boolean): Handle;
  embedding(weight: Handle, ids: Handle): Handle;
  layerNorm(x: Handle, normalizedShape: readonly number[], weight: Opt<Handle>, bias: Opt<Handle>, eps: number): Handle;
  attention(q: Handle, k: Handle, v: Handle, mask: Opt<Handle>, causal: boolean, scale: Opt<number>, dropout: number): Handle;
  topk(x: Handle, k: number, dim: number, largest: boolean, sorted: boolean): [Handle, Handle];
  sort(x: Handle, dim: number, descending: boolean, stable: boolean): [Handle, Handle];
  multinomial(probs: Handle, samples: number, replacement: boolean): Handle;
  cumsum(x: Handle, dim: number): Handle;

  // autograd
  requiresGrad(x: Handle): boolean;
  setRequiresGrad(x: Handle, value: boolean): void;
  backward(x: Handle, grad: Opt<Handle>, retainGraph: boolean, createGraph: boolean): void;
  grad(x: Handle): Opt<Handle>;
  hasGrad(x: Handle): boolean;
  setGrad(x: Handle, grad: Opt<Handle>): void;
  retainGrad(x: Handle): void;
  isLeaf(x: Handle): boolean;
  detach(x: Handle): Handle;
  autogradGrad(
    outputs: readonly Handle[],
    inputs: readonly Handle[],
    gradOutputs: Opt<readonly Opt<Handle>[]>,
    retainGraph: Opt<boolean>,
    createGraph: boolean,
    allowUnused: boolean,
  ): Opt<Handle>[];
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  enterInferenceMode(): number;
  exitInferenceMode(depth: number): void;
  isInferenceMode(): boolean;

  // optimizers
  adamwStep(
    params: readonly Handle[],
    expAvg: readonly Handle[],
    expAvgSq: readonly Handle[],
    step: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    maximize: boolean,
  ): void;
  sgdStep(
    params: readonly Handle[],
    buffers: readonly Opt<Handle>[],
    lr: number,
    momentum: number,
    dampening: number,
    weightDecay: number,
    nesterov: boolean,
    maximize: boolean,
  ): Opt<Handle>[];
  clipGradNorm(params: readonly Handle[], maxNorm: number, normType: number): number;

  // runtime and devices
  numThreads(): number;
  /** Distinct threads an at::parallel_for inside the addon ran on (1 when it was built without -fopenmp). */
  addonParallelThreads(): number;
  setNumThreads(n: number): void;
  parallelInfo(): string;
  buildConfig(): string;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(device: number): void;
  cudaMemory(device: number): [number, number, number];
  cudaEmptyCache(): void;
  cudaResetPeak(device: number): void;

  // c10d process groups (native/src/distributed.cc); the backends this build compiled
  readonly distributedBackends: readonly string[];
  distCreate(
    backend: string,
    storeHost: string,
    storePort: number,
    rank: number,
    worldSize: number,
    timeoutMs: number,
    deviceHost: Opt<string>,
  ): ProcessGroupHandle;
  distAllreduce(group: ProcessGroupHandle, x: Handle, op: "sum" | "avg" | "max" | "min"): void;
  distBroadcast(group: ProcessGroupHandle, x: Handle, root: number): void;
  distBarrier(group: ProcessGroupHandle): void;
  distDestroy(group: ProcessGroupHandle): void;

  // files
  readTensors(path: string, entries: readonly [offset: number, dtype: number, shape: readonly number[]][], device: string): Handle[];
  writeTensors(path: string, header: Uint8Array, tensors: readonly Handle[]): void;
  /** A torch.save (zip) file unpickled: tensors as { tensor }, dicts as { dict: [key, value][] }. */
  loadTorchFile(path: string): unknown;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Where an addon file may live: build/Release or build/Debug from the package root (src/ or dist/). */
export function addonCandidates(file: string): string[] {
  const roots = [resolve(here, "../.."), resolve(here, "../../..")];
  return roots.flatMap((root) => [join(root, "build/Release", file), join(root, "build/Debug", file)]);
}

/** Where the addon may live: $EMLAB_NATIVE, then build/Release from the package root (src/ or dist/). */
function candidatePaths(): string[] {
  const fromEnv = process.env.EMLAB_NATIVE ? [resolve(process.env.EMLAB_NATIVE)] : [];
  return [...fromEnv, ...addonCandidates("emlab.node")];
}

/**
 * How long libtorch's idle OpenMP threads spin before sleeping (libgomp reads it when it loads, so it is
 * set before the addon; an OMP_WAIT_POLICY or GOMP_SPINCOUNT of the caller's wins). libgomp's default
 * (300000 spins) made a 0.5B-model forward 3.4x slower next to OpenBLAS's own threads on 2 cores;
 * sleeping at once (OMP_WAIT_POLICY=PASSIVE) costs a wake-up in every parallel region, ~25 ms per decode
 * step of that model at batch 8 (hundreds of small regions). A bounded spin keeps both: on the 2-core
 * test machine the forward ran as fast as with PASSIVE and a batch-8 decode step took 111 ms against
 * 142 ms.
 */
const DEFAULT_GOMP_SPINCOUNT = "30000";

function configureThreads(): void {
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env.GOMP_SPINCOUNT = DEFAULT_GOMP_SPINCOUNT;
  }
}

function load(): NativeAddon {
  configureThreads();
  const path = candidatePaths().find((p) => existsSync(p));
  if (!path) {
    throw new Error(
      "emlab: the native addon is not built (build/Release/emlab.node is missing). Run `npm run build:native` " +
        "(needs libtorch: `apt-get install -y libtorch-dev libopenblas0-pthread`, or LIBTORCH=..., or a python3 with torch).",
    );
  }
  const require = createRequire(import.meta.url);
  const addon = require(path) as NativeAddon;
  // Failing ops throw the typed errors of errors.ts, built by the addon through this factory.
  addon.setErrorFactory(makeTorchError);
  return addon;
}

/** The loaded addon (loaded once, at first import). */
export const native: NativeAddon = load();
