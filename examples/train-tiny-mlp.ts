/**
 * A small, real training run on CPU: a 2-layer MLP learns to classify a two-arm spiral (1,000 points,
 * 2 classes) with cross-entropy and AdamW. Prints the loss falling and the final accuracy.
 *   npx tsx examples/train-tiny-mlp.ts [--steps N]
 */
import { parseArgs } from "node:util";
import { AdamW, crossEntropy, linear, liveTensorCount, manualSeed, rand, tensor, type Tensor, tidy } from "../src/index.js";

const { values } = parseArgs({ options: { steps: { type: "string", default: "400" } } });
const steps = Number(values.steps);

// Data: two interleaved spirals, a classic non-linear problem.
function spiral(pointsPerClass: number): { x: number[]; y: bigint[] } {
  const x: number[] = [];
  const y: bigint[] = [];
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < pointsPerClass; i++) {
      const r = (i / pointsPerClass) * 5;
      const angle = 1.75 * (i / pointsPerClass) * 2 * Math.PI + c * Math.PI;
      x.push(r * Math.sin(angle) + 0.15 * Math.sin(7 * i), r * Math.cos(angle) + 0.15 * Math.cos(5 * i));
      y.push(BigInt(c));
    }
  }
  return { x, y };
}

manualSeed(0);
const data = spiral(500);
const inputs = tensor(Float32Array.from(data.x), { shape: [1000, 2] });
const labels = tensor(BigInt64Array.from(data.y));

const hidden = 64;
const init = (rows: number, cols: number): Tensor => {
  const bound = 1 / Math.sqrt(cols);
  return tidy(() => rand([rows, cols]).mul(2 * bound).sub(bound).requiresGrad_());
};
const w1 = init(hidden, 2);
const b1 = tidy(() => rand([hidden]).mul(0.1).requiresGrad_());
const w2 = init(hidden, hidden);
const b2 = tidy(() => rand([hidden]).mul(0.1).requiresGrad_());
const w3 = init(2, hidden);
const params = [w1, b1, w2, b2, w3];
const optimizer = new AdamW(params, { lr: 1e-2, weightDecay: 0.01 });

const forward = (x: Tensor): Tensor => linear(linear(linear(x, w1, b1).tanh(), w2, b2).tanh(), w3);

const start = Date.now();
for (let step = 1; step <= steps; step++) {
  const loss = tidy(() => {
    const l = crossEntropy(forward(inputs), labels);
    optimizer.zeroGrad();
    l.backward();
    optimizer.step();
    return l.toNumber();
  });
  if (step === 1 || step % 50 === 0) console.log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}`);
}
const accuracy = tidy(() => forward(inputs).argmax(1).eq(labels).to("f32").mean().toNumber());
console.log(`trained ${steps} steps in ${((Date.now() - start) / 1000).toFixed(2)} s; accuracy ${(accuracy * 100).toFixed(1)}%`);

optimizer.dispose();
for (const t of [...params, inputs, labels]) t.dispose();
console.log(`live tensors after cleanup: ${liveTensorCount()}`);
