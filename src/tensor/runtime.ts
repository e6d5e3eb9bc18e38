/**
 * Runtime facts and device control: libtorch version, intra-op threads, BLAS/build config and the
 * CUDA helpers (availability, device count, synchronize, caching-allocator memory, empty cache).
 */
import { native } from "../native/addon.js";
import { DeviceUnavailableError } from "./errors.js";

export const torchVersion: string = native.torchVersion;
/** Whether the addon was compiled against a libtorch with CUDA. */
export const builtWithCuda: boolean = native.builtWithCuda;

export function numThreads(): number {
  return native.numThreads();
}
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
/** libtorch's parallel backend description (threads, OpenMP/MKL). */
export function parallelInfo(): string {
  return native.parallelInfo();
}
/** libtorch's build configuration (BLAS, CUDA, compiler flags). */
export function buildConfig(): string {
  return native.buildConfig();
}

export interface CudaMemory {
  allocated: number;
  reserved: number;
  peakAllocated: number;
}

function deviceIndex(device: number | string): number {
  if (typeof device === "number") return device;
  const match = /^cuda(?::(\d+))?$/.exec(device);
  if (!match) throw new TypeError(`not a CUDA device: ${device}`);
  return Number(match[1] ?? 0);
}

export const cuda = {
  isAvailable(): boolean {
    return native.cudaIsAvailable();
  },
  deviceCount(): number {
    return native.cudaDeviceCount();
  },
  synchronize(device: number | string = 0): void {
    requireCuda("cuda.synchronize");
    native.cudaSynchronize(deviceIndex(device));
  },
  /** Bytes allocated by tensors, reserved by the caching allocator, and the allocated peak. */
  memory(device: number | string = 0): CudaMemory {
    requireCuda("cuda.memory");
    const [allocated, reserved, peakAllocated] = native.cudaMemory(deviceIndex(device));
    return { allocated, reserved, peakAllocated };
  },
  resetPeakMemory(device: number | string = 0): void {
    requireCuda("cuda.resetPeakMemory");
    native.cudaResetPeak(deviceIndex(device));
  },
  /** Returns cached, unused blocks to the driver. A no-op without CUDA. */
  emptyCache(): void {
    native.cudaEmptyCache();
  },
};

function requireCuda(op: string): void {
  if (!native.cudaIsAvailable()) {
    const message = builtWithCuda ? "no CUDA device is available" : "emlab was built against a CPU-only libtorch";
    throw new DeviceUnavailableError({ message: `${op}: ${message}`, op, torchMessage: "" });
  }
}

/**
 * Throws DeviceUnavailableError when `device` cannot hold tensors here (CUDA on a CPU-only build,
 * no GPU, or an index past the device count), before any work is done on it.
 */
export function checkDeviceAvailable(device: string, op = "device"): void {
  if (device === "cpu") return;
  const index = deviceIndex(device);
  requireCuda(op);
  const count = native.cudaDeviceCount();
  if (index >= count) {
    throw new DeviceUnavailableError({
      message: `${op}: ${device} does not exist (${count} CUDA device${count === 1 ? "" : "s"})`,
      op,
      torchMessage: "",
    });
  }
}
