/**
 * Devices the parametrised tests run on: always cpu; cuda:0 when CUDA is available (or forced with
 * EMLAB_TEST_GPU=1, which fails loudly if it is not). `forEachDevice` registers a describe block per
 * device and a visibly skipped one, with its reason, when CUDA is absent.
 */
import { describe } from "vitest";
import { builtWithCuda, cuda, type Device } from "../../src/tensor/index.js";

const cudaAvailable = cuda.isAvailable();
if (process.env.EMLAB_TEST_GPU === "1" && !cudaAvailable) {
  throw new Error("EMLAB_TEST_GPU=1 but CUDA is not available to emlab");
}

export const cudaSkipReason = cudaAvailable
  ? null
  : builtWithCuda
    ? "no CUDA device visible"
    : "emlab is built against a CPU-only libtorch";

export const testDevices: Device[] = cudaAvailable ? ["cpu", "cuda:0"] : ["cpu"];

export function forEachDevice(name: string, body: (device: Device) => void): void {
  for (const device of testDevices) describe(`${name} [${device}]`, () => body(device));
  if (cudaSkipReason) describe.skip(`${name} [cuda:0] skipped: ${cudaSkipReason}`, () => body("cuda:0"));
}
