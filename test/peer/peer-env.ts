/**
 * The peer environment (scripts/peer-env.sh: pip torch 2.x, transformers, PEFT) as seen from the peer
 * tests: where its python is, whether it works, and `runReference`, which hands a batch of tasks to
 * scripts/peer/hf_reference.py in ONE python process (importing torch + transformers costs ~30 s here).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const peerEnvDir = resolve(process.env.EMLAB_PEER_ENV ?? join(homedir(), ".cache", "emlab", "peer-env"));
export const peerPython = join(peerEnvDir, "bin", "python");
const repoRoot = resolve(import.meta.dirname, "..", "..");

/** Why the peer suite cannot run here, or null when it can. */
export function peerUnavailable(): string | null {
  if (!existsSync(peerPython)) return `no peer environment at ${peerEnvDir} (create it with scripts/peer-env.sh)`;
  try {
    execFileSync("bash", [join(repoRoot, "scripts", "peer-env.sh"), "--check"], { stdio: "ignore" });
  } catch {
    return `the peer environment at ${peerEnvDir} is incomplete (re-run scripts/peer-env.sh)`;
  }
  return null;
}

export type ReferenceTask = Record<string, unknown> & { kind: "model" | "peft_create" | "peft_load" | "tokenizer" };

/** Runs the tasks in the peer python; throws with the python traceback when any task failed. */
export function runReference(tasks: readonly ReferenceTask[], workDir: string): { torch: string; transformers: string; peft: string } {
  const job = join(workDir, `job-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.json`);
  writeFileSync(job, JSON.stringify({ tasks }));
  const result = spawnSync(peerPython, [join(repoRoot, "scripts", "peer", "hf_reference.py"), job], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: {
      ...process.env,
      PYTHONUNBUFFERED: "1",
      TOKENIZERS_PARALLELISM: "false",
      HF_HUB_OFFLINE: "1",
      HF_HUB_DISABLE_PROGRESS_BARS: "1",
      TRANSFORMERS_VERBOSITY: "error",
    },
  });
  if (result.status !== 0) throw new Error(`hf_reference.py failed (exit ${result.status}):\n${result.stderr.slice(-6000)}`);
  return JSON.parse(readFileSync(job.replace(/\.json$/, ".versions.json"), "utf8"));
}

export const peerWorkDir = (prefix: string): string => mkdtempSync(join(tmpdir(), `emlab-peer-${prefix}-`));
