// c10d collectives across real processes (Gloo on CPU, rendezvous on loopback): two ranks run
// test/distributed/collective-child.mjs on the compiled library and report what they saw; the
// expected values are computed here from the ranks' inputs. Also: a rank that dies makes the other's
// collective fail with a DistributedError (no hang), and a rendezvous missing a rank times out.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { availableBackends, DistributedError, ProcessGroup } from "../../src/distributed/process-group.js";
import { freePort } from "../../src/distributed/launcher.js";

const CHILD = resolve("test/distributed/collective-child.mjs");
const hasGloo = availableBackends().includes("gloo");

interface RankRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  report: Record<string, unknown> | null;
  stderr: string;
}

function runRank(mode: string, rank: number, worldSize: number, port: number, timeoutMs = 20_000): Promise<RankRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CHILD, mode], {
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(port),
        TEST_TIMEOUT_MS: String(timeoutMs),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", fail);
    child.on("exit", (code, signal) => {
      const line = stdout.trim().split("\n").filter(Boolean).at(-1);
      done({ code, signal, report: line ? (JSON.parse(line) as Record<string, unknown>) : null, stderr });
    });
  });
}

const title = hasGloo
  ? "c10d process group across 2 real processes (Gloo)"
  : "c10d process group: skipped, this addon build has no Gloo backend (gloo headers missing at build time: apt-get install libgloo-dev, rebuild)";
describe.skipIf(!hasGloo)(title, () => {
  it("allreduce (sum, avg, max), broadcast and barrier give every rank the combined values", async () => {
    if (!existsSync("dist/distributed/process-group.js")) throw new Error("dist/ is missing: run npx tsc -p tsconfig.build.json first");
    const port = await freePort();
    const runs = await Promise.all([0, 1].map((rank) => runRank("collectives", rank, 2, port)));
    // Inputs of rank r: summed [r+1, 10(r+1), -0.5r]; averaged [r+1, 2r]; maxed [r, 5 - 3r]; broadcast [100+r, 200+r] from rank 1.
    const inputs = [0, 1].map((r) => ({ summed: [r + 1, 10 * (r + 1), -0.5 * r], averaged: [r + 1, 2 * r], maxed: [r, 5 - 3 * r] }));
    const sum = (key: "summed" | "averaged") => inputs[0]![key].map((v, i) => v + inputs[1]![key][i]!);
    for (const [rank, run] of runs.entries()) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.report).toEqual({
        rank,
        summed: sum("summed"),
        averaged: sum("averaged").map((v) => v / 2),
        maxed: inputs[0]!.maxed.map((v, i) => Math.max(v, inputs[1]!.maxed[i]!)),
        broadcast: [101, 201],
      });
    }
  });

  it("a rank killed after the rendezvous makes the survivor's allreduce fail with a DistributedError, not hang", async () => {
    const port = await freePort();
    const started = Date.now();
    const [survivor, killed] = await Promise.all([runRank("peer-dies", 0, 2, port, 15_000), runRank("peer-dies", 1, 2, port, 15_000)]);
    expect(killed.signal).toBe("SIGKILL");
    expect(survivor.code, survivor.stderr).toBe(0);
    expect(survivor.report).toMatchObject({ rank: 0, error: "DistributedError" });
    expect(["peer_closed", "timeout"]).toContain(survivor.report!.reason);
    expect(String(survivor.report!.message)).toMatch(/^rank 0: allreduce: /);
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it("a rendezvous that a rank never joins fails with a DistributedError within its timeout", async () => {
    const port = await freePort();
    const started = Date.now();
    const run = await runRank("collectives", 0, 2, port, 3_000);
    expect(run.code, run.stderr).toBe(3);
    expect(run.report).toMatchObject({ error: "DistributedError" });
    expect(["rendezvous", "timeout"]).toContain(run.report!.reason);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it("refuses bad arguments with a typed error before touching the network", () => {
    const attempt = (options: Parameters<typeof ProcessGroup.create>[0]) => {
      try {
        ProcessGroup.create(options);
      } catch (error) {
        return error;
      }
      return null;
    };
    for (const options of [
      { masterAddr: "127.0.0.1", masterPort: 29500, rank: 2, worldSize: 2 },
      { masterAddr: "127.0.0.1", masterPort: 0, rank: 0, worldSize: 1 },
      { masterAddr: "127.0.0.1", masterPort: 29500, rank: 0, worldSize: 1, backend: "nccl" as const },
    ]) {
      const error = attempt(options);
      if (options.backend === "nccl" && availableBackends().includes("nccl")) continue;
      expect(error).toBeInstanceOf(DistributedError);
      expect((error as DistributedError).reason).toMatch(/invalid|unavailable/);
    }
  });
});
