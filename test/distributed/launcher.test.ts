// The rank launcher with plain node scripts as ranks (no training): the torchrun-style environment
// each rank gets, rank-prefixed stderr, and a failing rank that stops the others and names itself.
import { describe, expect, it } from "vitest";
import { launchRanks } from "../../src/distributed/launcher.js";

const run = async (script: string, options: Parameters<typeof launchRanks>[2]) => {
  const lines: string[] = [];
  const started = Date.now();
  const result = await launchRanks(process.execPath, ["-e", script], { ...options, stderr: (text) => lines.push(text) });
  return { result, text: lines.join(""), ms: Date.now() - started };
};

describe("launchRanks", () => {
  it("gives each rank RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (global ranks from the node rank)", async () => {
    const script =
      "const e = process.env; console.error([e.RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR, e.MASTER_PORT].join(' '))";
    const { result, text } = await run(script, { nproc: 3, nnodes: 2, nodeRank: 1, masterAddr: "127.0.0.1", masterPort: 29999 });
    expect(result).toEqual({ exitCode: 0, failure: null });
    for (const local of [0, 1, 2]) expect(text).toContain(`[rank ${3 + local}] ${3 + local} ${local} 6 3 127.0.0.1 29999\n`);
  });

  it("picks a free loopback port on one node; refuses a multi-node run without master address and port", async () => {
    const { text } = await run("console.error(process.env.MASTER_ADDR + ':' + process.env.MASTER_PORT)", { nproc: 1 });
    expect(text).toMatch(/^\[rank 0\] 127\.0\.0\.1:\d+\n$/);
    await expect(launchRanks(process.execPath, ["-e", ""], { nproc: 1, nnodes: 2, nodeRank: 0 })).rejects.toThrow(
      /--master-addr and --master-port/,
    );
    await expect(launchRanks(process.execPath, ["-e", ""], { nproc: 0 })).rejects.toThrow(/--nproc/);
  });

  it("a rank exiting non-zero stops the others (SIGTERM after the grace period) and the launch names it", async () => {
    const script = "if (process.env.RANK === '1') process.exit(3); setInterval(() => {}, 1000)";
    const { result, text, ms } = await run(script, { nproc: 3, graceMs: 300 });
    expect(result.exitCode).toBe(3);
    expect(result.failure).toMatchObject({ rank: 1, code: 3 });
    expect(text).toMatch(/rank 1 exited with code 3/);
    expect(ms).toBeLessThan(20_000);
  });

  it("a rank killed by a signal fails the launch with exit code 1 and the signal in the message", async () => {
    const script = "if (process.env.RANK === '0') process.kill(process.pid, 'SIGKILL'); setInterval(() => {}, 1000)";
    const { result, text } = await run(script, { nproc: 2, graceMs: 300 });
    expect(result.exitCode).toBe(1);
    expect(result.failure).toMatchObject({ rank: 0, signal: "SIGKILL" });
    expect(text).toMatch(/rank 0 was killed by SIGKILL/);
  });
});
