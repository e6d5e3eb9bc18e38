/** Native baselines for benchmarks: the same op timed in a C++ loop inside the addon. */
import { native } from "../native/addon.js";

/** Microseconds per at::add of two 4-element f32 tensors in a C++ loop (no JS per call). */
export function cppTinyAddMicros(iterations: number, requiresGrad: boolean): number {
  return native.benchTinyAdd(iterations, requiresGrad);
}
