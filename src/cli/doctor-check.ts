/**
 * What `emlab doctor` (cli/doctor.ts) reports: where libtorch came from, its version, threads, BLAS,
 * CUDA devices, and a self-check (forward, backward and one AdamW step on a 2x2 problem) against
 * closed-form values computed here in float64.
 */
import { readFileSync } from "node:fs";
import { AdamW } from "../optim/index.js";
import { buildConfig, cuda, numThreads, tensor, tidy, torchVersion } from "../tensor/index.js";
import { native } from "../native/addon.js";

export interface DoctorReport {
  torchVersion: string;
  builtWithCuda: boolean;
  cuda: boolean;
  cudaDevices: number;
  threads: number;
  blas: string;
  addon: string;
  selfCheck: "ok" | string;
}

/** Runs the self-check; returns "ok" or a description of the first mismatch. */
export function selfCheck(): "ok" | string {
  // loss = sum((W x - y)^2), dL/dW = 2 (W x - y) x^T; AdamW's first step moves each weight by
  // lr * g / (|g| + eps) after decaying it by (1 - lr * wd).
  const w0 = [0.5, -1, 2, 0.25];
  const x = [1, 2];
  const y = [0, 1];
  const lr = 0.1;
  const wd = 0.01;
  const eps = 1e-8;
  const residual = [w0[0]! * x[0]! + w0[1]! * x[1]! - y[0]!, w0[2]! * x[0]! + w0[3]! * x[1]! - y[1]!];
  const expectedLoss = residual[0]! ** 2 + residual[1]! ** 2;
  const expectedGrad = [2 * residual[0]! * x[0]!, 2 * residual[0]! * x[1]!, 2 * residual[1]! * x[0]!, 2 * residual[1]! * x[1]!];
  const expectedW = w0.map((w, i) => w * (1 - lr * wd) - (lr * expectedGrad[i]!) / (Math.abs(expectedGrad[i]!) + eps));
  try {
    return tidy(() => {
      const w = tensor([
        [w0[0]!, w0[1]!],
        [w0[2]!, w0[3]!],
      ]).requiresGrad_();
      const loss = w.matmul(tensor(x)).sub(tensor(y)).square().sum();
      const lossValue = loss.toNumber();
      if (Math.abs(lossValue - expectedLoss) > 1e-5) return `forward: loss ${lossValue} != ${expectedLoss}`;
      loss.backward();
      const grad = Array.from(w.grad!.toArray() as Float32Array);
      const gradError = Math.max(...grad.map((g, i) => Math.abs(g - expectedGrad[i]!)));
      if (gradError > 1e-5) return `backward: gradient ${grad} != ${expectedGrad}`;
      const optimizer = new AdamW([w], { lr, weightDecay: wd, eps });
      optimizer.step();
      optimizer.dispose();
      const updated = Array.from(w.toArray() as Float32Array);
      const stepError = Math.max(...updated.map((v, i) => Math.abs(v - expectedW[i]!)));
      if (stepError > 1e-5) return `adamw: weights ${updated} != ${expectedW}`;
      return "ok";
    });
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}

/** libtorch's BLAS_INFO plus the BLAS library actually mapped into this process (Debian swaps it). */
function blasLine(config: string): string {
  const info = /BLAS_INFO=([^,\s]+)/.exec(config)?.[1] ?? "unknown";
  let mapped = "";
  try {
    const maps = readFileSync("/proc/self/maps", "utf8");
    mapped =
      maps
        .split("\n")
        .map((l) => l.split(/\s+/)[5] ?? "")
        .find((p) => /lib(open)?blas|libmkl|libblis/.test(p)) ?? "";
  } catch {
    // not Linux: no maps to read
  }
  return mapped ? `${info} (loaded: ${mapped})` : info;
}

export function doctor(): DoctorReport {
  const available = cuda.isAvailable();
  return {
    torchVersion,
    builtWithCuda: native.builtWithCuda,
    cuda: available,
    cudaDevices: available ? cuda.deviceCount() : 0,
    threads: numThreads(),
    blas: blasLine(buildConfig()),
    addon: process.env.EMLAB_NATIVE ?? "build/Release/emlab.node",
    selfCheck: selfCheck(),
  };
}
