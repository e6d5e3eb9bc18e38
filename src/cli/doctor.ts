/** `emlab doctor [--json]`: prints the runtime report and exits non-zero when the self-check fails. */
import { doctor } from "./doctor-check.js";
import { parseOrHelp } from "./generate.js";
import { findLibtorchSource } from "./libtorch-source.js";
import { defineCommand } from "./options.js";

export const doctorCommand = defineCommand({
  name: "doctor",
  summary: "libtorch version and origin, CUDA devices, threads, BLAS, and a self-check.",
  options: { json: { type: "boolean", description: "print the report as JSON" } },
});

export function runDoctor(argv: readonly string[]): number {
  const parsed = parseOrHelp(doctorCommand, argv);
  if (parsed === null) return 0;
  const report = { ...doctor(), libtorch: findLibtorchSource() };
  if (parsed.values.json) {
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
