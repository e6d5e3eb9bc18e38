/**
 * `npm run bench:ops`: emlab's per-call overhead on tiny ops beside the same op in a C++ loop, and
 * a 256-1024-256 MLP forward+backward+AdamW step (batch 64) beside Debian's python3-torch running
 * the same workloads (bench/python_ops.py) in the same run. Prints a table of times and ratios.
 * Not a test: it asserts nothing.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cppTinyAddMicros } from "../src/runtime/baseline.js";
import { AdamW, linear, manualSeed, numThreads, ones, rand, randn, type Tensor, tensor, tidy, torchVersion } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const threads = numThreads();

function perCallMicros(iterations: number, fn: () => void): number {
  for (let i = 0; i < Math.min(10_000, iterations); i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
}

function tinyAdd(requiresGrad: boolean): number {
  const a = tensor([1, 2, 3, 4]);
  if (requiresGrad) a.requiresGrad_();
  const b = ones([4]);
  const micros = perCallMicros(200_000, () => a.add(b).dispose());
  a.dispose();
  b.dispose();
  return micros;
}

/** The same add inside tidy() scopes of 1,000 ops, the usual way emlab code runs (no GC finalizers). */
function tinyAddScoped(requiresGrad: boolean): number {
  const a = tensor([1, 2, 3, 4]);
  if (requiresGrad) a.requiresGrad_();
  const b = ones([4]);
  const batch = () =>
    tidy(() => {
      for (let i = 0; i < 1000; i++) a.add(b);
    });
  const micros = perCallMicros(200, batch) / 1000;
  a.dispose();
  b.dispose();
  return micros;
}

function matmul512(): number {
  const x = randn([512, 512]);
  const y = randn([512, 512]);
  for (let i = 0; i < 3; i++) x.matmul(y).dispose();
  const start = process.hrtime.bigint();
  for (let i = 0; i < 50; i++) x.matmul(y).dispose();
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / 50;
  x.dispose();
  y.dispose();
  return ms;
}

/** Linear layer parameters initialised like torch.nn.Linear (uniform +-1/sqrt(fan_in)). */
function linearParams(inFeatures: number, outFeatures: number): [Tensor, Tensor] {
  const bound = 1 / Math.sqrt(inFeatures);
  return tidy(() => {
    const w = rand([outFeatures, inFeatures])
      .mul(2 * bound)
      .sub(bound)
      .requiresGrad_();
    const b = rand([outFeatures])
      .mul(2 * bound)
      .sub(bound)
      .requiresGrad_();
    return [w, b] as [Tensor, Tensor];
  });
}

function mlpStep(): number {
  manualSeed(0);
  const [w1, b1] = linearParams(256, 1024);
  const [w2, b2] = linearParams(1024, 256);
  const params = [w1, b1, w2, b2];
  const optimizer = new AdamW(params, { lr: 1e-3 });
  const x = randn([64, 256]);
  const y = randn([64, 256]);
  const step = () =>
    tidy(() => {
      const out = linear(linear(x, w1, b1).gelu(), w2, b2);
      const loss = out.sub(y).pow(2).mean();
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
    });
  for (let i = 0; i < 20; i++) step();
  const steps = 300;
  const start = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) step();
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / steps;
  optimizer.dispose();
  for (const t of [...params, x, y]) t.dispose();
  return ms;
}

function python(): Record<string, number | string> | null {
  const script = join(here, "python_ops.py");
  for (const interpreter of ["/usr/bin/python3", "python3"]) {
    if (interpreter.startsWith("/") && !existsSync(interpreter)) continue;
    try {
      const out = execFileSync(interpreter, [script, String(threads)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      return JSON.parse(out.trim().split("\n").pop()!) as Record<string, number | string>;
    } catch {
      // try the next interpreter
    }
  }
  return null;
}

const cppAdd = cppTinyAddMicros(200_000, false);
const cppAddGrad = cppTinyAddMicros(200_000, true);
const jsAdd = tinyAdd(false);
const jsAddGrad = tinyAdd(true);
const jsAddScoped = tinyAddScoped(false);
const jsAddGradScoped = tinyAddScoped(true);
const mm = matmul512();
const mlp = mlpStep();
const py = python();

const fmt = (v: number, digits = 2) => v.toFixed(digits).padStart(9);
const ratio = (a: number, b: number | undefined) => (b === undefined ? "      n/a" : `${(a / b).toFixed(2).padStart(8)}x`);
const pyNum = (key: string) => (py && typeof py[key] === "number" ? (py[key] as number) : undefined);

console.log(
  `emlab bench:ops  libtorch ${torchVersion}, ${threads} threads; python: ${py ? `torch ${py.torch} (${py.threads} threads)` : "python3-torch not found (apt-get install python3-torch)"}`,
);
console.log("workload                                   emlab    C++ loop    python   emlab/C++  emlab/python");
const row = (name: string, ours: number, cpp: number | undefined, pyValue: number | undefined, unit: string) =>
  console.log(
    `${`${name} (${unit})`.padEnd(38)}${fmt(ours)}  ${cpp === undefined ? "       —" : fmt(cpp)}  ${pyValue === undefined ? "      —" : fmt(pyValue)}  ${ratio(ours, cpp)}  ${ratio(ours, pyValue)}`,
  );
row("tiny add [4] + [4]", jsAdd, cppAdd, pyNum("tinyAddUs"), "us/call");
row("tiny add, requires_grad", jsAddGrad, cppAddGrad, pyNum("tinyAddGradUs"), "us/call");
row("tiny add in tidy()", jsAddScoped, cppAdd, pyNum("tinyAddUs"), "us/call");
row("tiny add in tidy(), requires_grad", jsAddGradScoped, cppAddGrad, pyNum("tinyAddGradUs"), "us/call");
row("matmul 512x512", mm, undefined, pyNum("matmul512Ms"), "ms");
row("MLP 256-1024-256 b64 fwd+bwd+AdamW", mlp, undefined, pyNum("mlpStepMs"), "ms/step");
console.log(
  `per-call overhead over the C++ loop: ${(jsAdd - cppAdd).toFixed(2)} us unscoped, ${(jsAddScoped - cppAdd).toFixed(2)} us in tidy(); ` +
    `python's: ${pyNum("tinyAddUs") === undefined ? "n/a" : `${(pyNum("tinyAddUs")! - cppAdd).toFixed(2)} us`}`,
);
