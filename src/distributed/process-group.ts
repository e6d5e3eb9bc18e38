/**
 * A c10d process group through the addon: TCPStore rendezvous (rank 0 hosts the store), Gloo for CPU
 * tensors, NCCL for CUDA tensors where the build has it; in-place allreduce, broadcast, barrier.
 * Every failure is a DistributedError with a reason (a dead peer, a timeout, a failed rendezvous, a
 * backend this build lacks). It knows nothing of training: see src/distributed/data-parallel.ts.
 */
import { Data } from "effect";
import { native, type ProcessGroupHandle } from "../native/addon.js";
import type { Tensor } from "../tensor/index.js";
import { handleOf } from "../tensor/internal.js";

export type DistributedFailure = "peer_closed" | "timeout" | "rendezvous" | "unavailable" | "invalid";

/** A collective or the rendezvous failed; `reason` says how, `op` which call. */
export class DistributedError extends Data.TaggedError("DistributedError")<{
  readonly message: string;
  readonly reason: DistributedFailure;
  readonly op: string;
  readonly rank: number;
}> {}

export type DistributedBackend = "gloo" | "nccl";

export interface ProcessGroupOptions {
  /** Default gloo (CPU tensors); nccl for CUDA tensors. */
  backend?: DistributedBackend;
  /** The store's host (rank 0 listens there) and port. */
  masterAddr: string;
  masterPort: number;
  rank: number;
  worldSize: number;
  /** How long the rendezvous and each collective may wait for the others. Default 5 minutes. */
  timeoutMs?: number;
  /**
   * The address Gloo binds on this machine. Default: 127.0.0.1 when the master is on loopback, else
   * $EMLAB_GLOO_HOST or the address of this host's name.
   */
  deviceHost?: string | null;
}

/** The backends this build of the addon compiled. */
export function availableBackends(): readonly string[] {
  return native.distributedBackends;
}

const isLoopback = (host: string) => host === "localhost" || host === "::1" || host.startsWith("127.");

function classify(error: unknown, op: string, rank: number): DistributedError {
  const text = String((error as { torchMessage?: string }).torchMessage || (error as Error)?.message || error);
  const message = `rank ${rank}: ${op}: ${text.split("\n")[0]}`;
  const lower = text.toLowerCase();
  let reason: DistributedFailure = op === "distCreate" ? "rendezvous" : "peer_closed";
  if (/no (gloo|nccl|c10d) backend|unknown backend/.test(lower)) reason = "unavailable";
  else if (/timed out|timeout|deadline/.test(lower)) reason = "timeout";
  else if (/closed|reset|broken pipe|refused|eof|connection|socket|read error|write error/.test(lower))
    reason = op === "distCreate" ? "rendezvous" : "peer_closed";
  else if (/outside world size|must be|unknown reduce|contiguous/.test(lower)) reason = "invalid";
  return new DistributedError({ message, reason, op, rank });
}

/** One member of a process group. Collectives block until every rank joined them (or the timeout). */
export class ProcessGroup implements Disposable {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: DistributedBackend;
  #handle: ProcessGroupHandle | null;

  private constructor(handle: ProcessGroupHandle, options: ProcessGroupOptions) {
    this.#handle = handle;
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.backend = options.backend ?? "gloo";
  }

  /** Joins the group: rank 0 hosts the store at masterAddr:masterPort; returns once all ranks joined. */
  static create(options: ProcessGroupOptions): ProcessGroup {
    const { rank, worldSize, masterAddr, masterPort } = options;
    const backend = options.backend ?? "gloo";
    if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new DistributedError({
        message: `rank ${rank} is not in 0..${worldSize - 1} (WORLD_SIZE ${worldSize})`,
        reason: "invalid",
        op: "create",
        rank,
      });
    }
    if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535) {
      throw new DistributedError({ message: `master port ${masterPort} is not in 1..65535`, reason: "invalid", op: "create", rank });
    }
    if (!availableBackends().includes(backend)) {
      throw new DistributedError({
        message: `this emlab build has no ${backend} backend (compiled: ${availableBackends().join(", ") || "none"}); ${backend === "gloo" ? "install gloo's headers (Debian: libgloo-dev) and rebuild" : "build against a CUDA libtorch 2.x with nccl.h"}`,
        reason: "unavailable",
        op: "create",
        rank,
      });
    }
    const deviceHost =
      options.deviceHost !== undefined ? options.deviceHost : isLoopback(masterAddr) ? "127.0.0.1" : (process.env.EMLAB_GLOO_HOST ?? null);
    try {
      const handle = native.distCreate(
        backend,
        masterAddr,
        masterPort,
        rank,
        worldSize,
        options.timeoutMs ?? 300_000,
        backend === "gloo" ? deviceHost : null,
      );
      return new ProcessGroup(handle, { ...options, backend });
    } catch (error) {
      throw classify(error, "distCreate", rank);
    }
  }

  #call(op: string, body: (handle: ProcessGroupHandle) => void): void {
    if (this.#handle === null)
      throw new DistributedError({
        message: `rank ${this.rank}: ${op} on a destroyed process group`,
        reason: "invalid",
        op,
        rank: this.rank,
      });
    try {
      body(this.#handle);
    } catch (error) {
      throw classify(error, op, this.rank);
    }
  }

  /** In place: every rank ends with the sum (or mean, max, min) of all ranks' values. */
  allreduce(tensor: Tensor, op: "sum" | "avg" | "max" | "min" = "sum"): void {
    this.#call("allreduce", (handle) => native.distAllreduce(handle, handleOf(tensor), op));
  }

  /** In place: every rank ends with `root`'s values. */
  broadcast(tensor: Tensor, root = 0): void {
    this.#call("broadcast", (handle) => native.distBroadcast(handle, handleOf(tensor), root));
  }

  /** Returns once every rank reached it. */
  barrier(): void {
    this.#call("barrier", (handle) => native.distBarrier(handle));
  }

  /** Releases the backend and the store (idempotent). */
  destroy(): void {
    if (this.#handle === null) return;
    const handle = this.#handle;
    this.#handle = null;
    native.distDestroy(handle);
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

/** The torchrun-style environment of a launched rank (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), or null when absent. */
export function processGroupOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ProcessGroupOptions | null {
  if (env.WORLD_SIZE === undefined || env.RANK === undefined) return null;
  const number = (name: string, fallback?: number): number => {
    const text = env[name];
    if (text === undefined && fallback !== undefined) return fallback;
    const value = Number(text);
    if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(value)) {
      throw new DistributedError({
        message: `${name}=${JSON.stringify(text)} is not a non-negative integer`,
        reason: "invalid",
        op: "env",
        rank: -1,
      });
    }
    return value;
  };
  const backend = env.EMLAB_DIST_BACKEND ?? "gloo";
  if (backend !== "gloo" && backend !== "nccl")
    throw new DistributedError({ message: `EMLAB_DIST_BACKEND=${backend}: gloo or nccl`, reason: "invalid", op: "env", rank: -1 });
  return {
    backend,
    rank: number("RANK"),
    worldSize: number("WORLD_SIZE"),
    masterAddr: env.MASTER_ADDR ?? "127.0.0.1",
    masterPort: number("MASTER_PORT", 29500),
    timeoutMs: number("EMLAB_DIST_TIMEOUT_MS", 300_000),
  };
}
