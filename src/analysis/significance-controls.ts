/**
 * The random control vectors of the significance analysis (`emlab significance --random N`):
 * study: torch.manual_seed(seed), then N unit randn(d_model) draws (studyUnitRandomVectors); ours: a
 * Gaussian with the reference vector's norm per control, seeded seed + i (a unit-norm-per-entry
 * reference, all ones, when there is no vector). The caller owns the returned tensors.
 */
import type { LoadedModel } from "../models/load.js";
import { keep, type Tensor, tidy } from "../tensor/index.js";
import { randomControl, studyUnitRandomVectors } from "./interventions.js";

export function significanceControls(
  model: LoadedModel,
  count: number,
  kind: "study" | "ours",
  seed: number,
  reference: Tensor | undefined,
): Tensor[] {
  if (kind === "study") return studyUnitRandomVectors(model.spec.hiddenSize, count, seed);
  return Array.from({ length: count }, (_, i) =>
    keep(
      reference
        ? randomControl(reference, seed + i)
        : tidy(() => randomControl(model.parameters.get("model.norm.weight")!.to("f32").mul(0).add(1), seed + i)),
    ),
  );
}
