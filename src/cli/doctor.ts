/** `emlab doctor [--json]`: prints the runtime report and exits non-zero when the self-check fails. */
import { doctor } from "./doctor-check.js";
import { findLibtorchSource } from "./libtorch-source.js";

export function runDoctor(args: { json: boolean }): number {
  const report = { ...doctor(), libtorch: findLibtorchSource() };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    const lines = [
      `libtorch      ${report.torchVersion} (${report.libtorch})`,
      `CUDA          ${report.cuda ? `available, ${report.cudaDevices} device(s)` : report.builtWithCuda ? "built with CUDA, no device" : "not built with CUDA"}`,
      `threads       ${report.threads}`,
      `BLAS          ${report.blas}`,
      `self-check    ${report.selfCheck}`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  return report.selfCheck === "ok" ? 0 : 1;
}
