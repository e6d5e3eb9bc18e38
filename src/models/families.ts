/** The supported model families and the lookup from a config to its family. */
import { gemma2 } from "./gemma2/index.js";
import { gemma3 } from "./gemma3/index.js";
import type { ModelFamily } from "./family.js";
import type { HfConfig } from "./hf-config.js";
import { llama } from "./llama/index.js";
import { qwen2 } from "./qwen2/index.js";
import { qwen3 } from "./qwen3/index.js";
import { UnsupportedArchitectureError } from "./errors.js";

export const families: readonly ModelFamily[] = [qwen2, qwen3, llama, gemma2, gemma3];

export function familyFor(config: HfConfig, file: string): ModelFamily {
  const architecture = config.architectures?.[0];
  const found =
    (architecture !== undefined ? families.find((f) => f.architectures.includes(architecture)) : undefined) ??
    (config.model_type !== undefined ? families.find((f) => f.modelTypes.includes(config.model_type!)) : undefined);
  if (!found) {
    const name = architecture ?? config.model_type ?? "(none)";
    const supported = families.flatMap((f) => f.architectures).join(", ");
    throw new UnsupportedArchitectureError({
      message: `${file}: unsupported architecture ${name}; supported: ${supported}`,
      file,
      architecture: name,
    });
  }
  return found;
}
