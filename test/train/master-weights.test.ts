// Float32 master weights for bf16 training (src/train/master-weights.ts): updates too small for bf16
// accumulate in the float32 masters and reach the bf16 weights once large enough; gradients move to the
// masters; nothing leaks.
import { expect, it } from "vitest";
import { SGD } from "../../src/optim/index.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { MasterWeights } from "../../src/train/master-weights.js";
import { useLeakCheck } from "../helpers/leaks.js";

useLeakCheck();

it("keeps small updates that bf16 alone would round away", () => {
  const weight = tensor([1, 1], { dtype: "bf16" }).requiresGrad_();
  const direct = tensor([1, 1], { dtype: "bf16" }).requiresGrad_();
  const masters = new MasterWeights(new Map([["w", weight]]));
  const master = masters.masters.get("w")!;
  expect(master.dtype).toBe("f32");
  const optimizer = new SGD([master], { lr: 1e-3 });
  const directOptimizer = new SGD([direct], { lr: 1e-3 });
  for (let step = 0; step < 10; step++) {
    // loss = sum(w) -> gradient 1 per element; each step moves w by -1e-3, below bf16's spacing at 1 (2^-7).
    tidy(() => weight.sum().backward());
    tidy(() => direct.sum().backward());
    masters.pullGradients();
    expect(weight.grad).toBeNull();
    optimizer.step();
    directOptimizer.step();
    masters.pushWeights();
    optimizer.zeroGrad();
    directOptimizer.zeroGrad();
  }
  const m = tidy(() => Array.from(master.toArray() as Float32Array));
  m.forEach((v) => expect(Math.abs(v - 0.99)).toBeLessThan(1e-6));
  expect(tidy(() => direct.toList())).toEqual([1, 1]); // every single update rounded away
  // The bf16 weight follows the master: 0.99 rounds to the nearest bf16 value below 1.
  expect(tidy(() => (weight.toList() as number[])[0])).toBeLessThan(1);
  optimizer.dispose();
  directOptimizer.dispose();
  masters.dispose();
  weight.dispose();
  direct.dispose();
});
