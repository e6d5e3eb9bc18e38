/**
 * The `emlab` command line. Thin: parses arguments and calls one library function per command.
 */
import { parseArgs } from "node:util";
import { runDoctor } from "./doctor.js";

const usage = `usage: emlab <command> [options]

commands:
  doctor [--json]    libtorch version and origin, CUDA devices, threads, BLAS, and a self-check
`;

export function main(argv: readonly string[]): number {
  const [command, ...rest] = argv;
  switch (command) {
    case "doctor": {
      const { values } = parseArgs({ args: [...rest], options: { json: { type: "boolean", default: false } }, strict: true });
      return runDoctor({ json: values.json ?? false });
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(usage);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`emlab: unknown command ${JSON.stringify(command)}\n${usage}`);
      return 2;
  }
}
