/**
 * Continuing training from a finished solution (`init_from` in a run config, protocol.md §7.10): the
 * freshly created LoRA adapters or steering vector take the values of a saved PEFT adapter directory
 * or steering-vector file. The saved solution must have the run's shape and scale (r, alpha, rsLoRA,
 * modules; layer, site, alpha); a mismatch is an error naming both, never a silent rescale.
 */
import { existsSync } from "node:fs";
import { Data } from "effect";
import { join } from "node:path";
import type { LoraAdapter } from "../adapters/lora.js";
import { loadPeftAdapter } from "../adapters/peft.js";
import type { LoadedModel } from "../models/load.js";
import { noGrad } from "../tensor/index.js";
import type { SteeringVector } from "./steering.js";
import { loadSteeringVector } from "./steering-file.js";

export class InitFromError extends Data.TaggedError("InitFromError")<{ readonly message: string; readonly path: string }> {}

const fail = (path: string, message: string): never => {
  throw new InitFromError({ message: `init_from: ${message}`, path });
};

/** Copies a saved adapter into each of `adapters` (one adapter: `path` itself; several: `path/<name>` each, as the recipe saves them). */
export function initLoraFrom(path: string, adapters: readonly LoraAdapter[], model: LoadedModel): void {
  for (const adapter of adapters) {
    const dir = adapters.length === 1 ? path : join(path, adapter.name);
    if (!existsSync(join(dir, "adapter_config.json")))
      fail(dir, `${dir} holds no PEFT adapter (adapter_config.json) for adapter ${adapter.name}`);
    const saved = loadPeftAdapter(dir, model);
    try {
      const a = adapter.config;
      const b = saved.config;
      if (a.r !== b.r || a.alpha !== b.alpha || Boolean(a.useRslora) !== Boolean(b.useRslora)) {
        fail(
          dir,
          `${dir} has r ${b.r}, alpha ${b.alpha}, rsLoRA ${Boolean(b.useRslora)}; the run's ${adapter.name} has r ${a.r}, alpha ${a.alpha}, rsLoRA ${Boolean(a.useRslora)}`,
        );
      }
      const want = [...adapter.modules.keys()].sort();
      const have = [...saved.modules.keys()].sort();
      if (want.join(",") !== have.join(",")) {
        const missing = want.filter((m) => !saved.modules.has(m));
        const extra = have.filter((m) => !adapter.modules.has(m));
        fail(
          dir,
          `${dir} does not cover the run's modules (missing: ${missing.slice(0, 3).join(", ") || "none"}; extra: ${extra.slice(0, 3).join(", ") || "none"})`,
        );
      }
      noGrad(() => {
        for (const [name, m] of adapter.modules) {
          const s = saved.modules.get(name)!;
          m.A.copy_(s.A);
          m.B.copy_(s.B);
        }
      });
    } finally {
      saved.dispose();
    }
  }
}

/** Copies a saved steering vector (layer, site and alpha must equal the run's) into `steering`. */
export function initSteeringFrom(path: string, steering: SteeringVector, model: LoadedModel): void {
  if (!existsSync(path)) fail(path, `${path} does not exist`);
  const saved = loadSteeringVector(path, model.decoder);
  try {
    if (saved.layer !== steering.layer || saved.site !== steering.site || saved.alpha !== steering.alpha) {
      fail(
        path,
        `${path} is a vector for layer ${saved.layer} (${saved.site}, alpha ${saved.alpha}); the run steers layer ${steering.layer} (${steering.site}, alpha ${steering.alpha})`,
      );
    }
    if (saved.vector.shape.join(",") !== steering.vector.shape.join(",")) {
      fail(
        path,
        `${path} holds a vector of shape [${saved.vector.shape.join(", ")}], the model needs [${steering.vector.shape.join(", ")}]`,
      );
    }
    noGrad(() => void steering.vector.copy_(saved.vector));
  } finally {
    saved.dispose();
  }
}
