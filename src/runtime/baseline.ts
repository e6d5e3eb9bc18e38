/** Native baselines for benchmarks: the same op timed in a C++ loop inside the benchmark-only addon. */
import { benchAddon } from "../native/bench-addon.js";

/** Microseconds per at::add of two 4-element f32 tensors in a C++ loop (no JS per call). */
export function cppTinyAddMicros(iterations: number, requiresGrad: boolean): number {
  return benchAddon().benchTinyAdd(iterations, requiresGrad);
}
