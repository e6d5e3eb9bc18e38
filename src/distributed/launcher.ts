/**
 * Starts the ranks of a data-parallel run, torchrun style: N child processes of `emlab` (or any
 * command) with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in their environment
 * (loopback and a free port by default). Each child's stderr lines are prefixed with its rank.
 * SIGINT/SIGTERM are forwarded; when a rank fails, the others get a grace period to fail on their own
 * (a dead peer makes their next collective fail), then SIGTERM, then SIGKILL, and the launch reports
 * the first failing rank. It does not know what the children run.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface LaunchOptions {
  /** Processes on this node. */
  nproc: number;
  /** Nodes in the run and this node's index (default 1 and 0). */
  nnodes?: number;
  nodeRank?: number;
  /** The store host (rank 0's node) and port; default 127.0.0.1 and a free port (single node only). */
  masterAddr?: string;
  masterPort?: number;
  /** After a rank failed, how long the others may take to fail by themselves before SIGTERM (default 10 s), then SIGKILL (5 s more). */
  graceMs?: number;
  /** Extra environment for every rank. */
  env?: NodeJS.ProcessEnv;
  /** Where rank-prefixed stderr lines and launcher messages go (default process.stderr). */
  stderr?: (text: string) => void;
}

export interface LaunchResult {
  /** 0 when every rank exited 0. */
  exitCode: number;
  /** The first rank that failed, how, and a one-line message naming it; null on success. */
  failure: { rank: number; code: number | null; signal: NodeJS.Signals | null; message: string } | null;
}

/** A TCP port that was free on `host` a moment ago. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs `command args` as every local rank and resolves when all exited (or were stopped after a failure). */
export async function launchRanks(command: string, args: readonly string[], options: LaunchOptions): Promise<LaunchResult> {
  const nnodes = options.nnodes ?? 1;
  const nodeRank = options.nodeRank ?? 0;
  const { nproc } = options;
  if (!Number.isInteger(nproc) || nproc < 1) throw new RangeError(`--nproc ${nproc}: a positive integer`);
  if (!Number.isInteger(nnodes) || nnodes < 1 || !Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) {
    throw new RangeError(`--node-rank ${nodeRank} is not in 0..${nnodes - 1} (--nnodes ${nnodes})`);
  }
  if (nnodes > 1 && (options.masterAddr === undefined || options.masterPort === undefined)) {
    throw new RangeError("a multi-node run (--nnodes > 1) needs --master-addr and --master-port (the same on every node)");
  }
  const write = options.stderr ?? ((text: string) => void process.stderr.write(text));
  const masterAddr = options.masterAddr ?? "127.0.0.1";
  const masterPort = options.masterPort ?? (await freePort(masterAddr));
  const worldSize = nnodes * nproc;
  const graceMs = options.graceMs ?? 10_000;

  const children: { rank: number; child: ChildProcess; exited: boolean }[] = [];
  let failure: LaunchResult["failure"] = null;
  let stopping = false;
  const timers: NodeJS.Timeout[] = [];
  const stopOthers = () => {
    if (stopping) return;
    stopping = true;
    timers.push(
      setTimeout(() => {
        for (const c of children) if (!c.exited) c.child.kill("SIGTERM");
        timers.push(setTimeout(() => children.forEach((c) => !c.exited && c.child.kill("SIGKILL")), 5_000));
      }, graceMs),
    );
  };
  const forward = (signal: NodeJS.Signals) => () => {
    write(`emlab launch: ${signal}: stopping ${children.filter((c) => !c.exited).length} ranks\n`);
    for (const c of children) if (!c.exited) c.child.kill(signal);
    stopOthers();
  };
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);

  try {
    const exits = Array.from({ length: nproc }, (_, localRank) => {
      const rank = nodeRank * nproc + localRank;
      const child = spawn(command, [...args], {
        stdio: ["ignore", rank === 0 ? "inherit" : "ignore", "pipe"],
        env: {
          ...process.env,
          ...options.env,
          RANK: String(rank),
          LOCAL_RANK: String(localRank),
          WORLD_SIZE: String(worldSize),
          LOCAL_WORLD_SIZE: String(nproc),
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
          ...cudaDeviceOf(localRank, { ...process.env, ...options.env }),
        },
      });
      const entry = { rank, child, exited: false };
      children.push(entry);
      let pending = "";
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (chunk: string) => {
        const lines = (pending + chunk).split("\n");
        pending = lines.pop()!;
        for (const line of lines) write(`[rank ${rank}] ${line}\n`);
      });
      return new Promise<void>((resolve) => {
        child.on("error", (error) => {
          entry.exited = true;
          failure ??= { rank, code: null, signal: null, message: `rank ${rank} could not start: ${error.message}` };
          stopOthers();
          resolve();
        });
        child.on("exit", (code, signal) => {
          entry.exited = true;
          if (pending) write(`[rank ${rank}] ${pending}\n`);
          if (code !== 0 && failure === null) {
            const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            failure = {
              rank,
              code,
              signal,
              message: `rank ${rank} ${how}; the other ranks were stopped (the last checkpoint stays resumable with --resume)`,
            };
            stopOthers();
          }
          resolve();
        });
      });
    });
    await Promise.all(exits);
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
    for (const timer of timers) clearTimeout(timer);
  }
  const failed = failure as LaunchResult["failure"];
  if (failed) write(`emlab launch: ${failed.message}\n`);
  return { exitCode: failed ? (failed.code && failed.code > 0 ? failed.code : 1) : 0, failure: failed };
}

/** NCCL ranks each see one GPU (the local rank's of CUDA_VISIBLE_DEVICES, else that index), so "cuda" is theirs. */
function cudaDeviceOf(localRank: number, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.EMLAB_DIST_BACKEND !== "nccl") return {};
  const visible = env.CUDA_VISIBLE_DEVICES?.split(",").filter(Boolean);
  return { CUDA_VISIBLE_DEVICES: visible && visible.length > localRank ? visible[localRank]! : String(localRank) };
}

/** bin/emlab.js of this package (from src/ or dist/). */
export function emlabBin(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "emlab.js");
}

/**
 * The API of `emlab train CONFIG --nproc N`: `emlab train CONFIG [--resume]` as N ranks of one
 * data-parallel run (Gloo on CPU; EMLAB_DIST_BACKEND=nccl in `env` for CUDA).
 */
export function trainDataParallel(config: string, options: LaunchOptions & { resume?: boolean }): Promise<LaunchResult> {
  return launchRanks(process.execPath, [emlabBin(), "train", config, ...(options.resume ? ["--resume"] : [])], options);
}
