/**
 * Reading the artefacts analyses work on: direction files (from `emlab direction`, or a steering
 * vector file's vector) and, re-exported from src/train/steering-file.ts, steering vectors.
 */
import { loadSafetensors } from "../io/safetensors.js";
import { keep, type Tensor, tidy } from "../tensor/index.js";
import { checkDirectionValues, readTorchSteeringVector } from "../train/steering-file.js";

export {
  checkDirectionValues,
  DirectionError,
  loadSteeringVector,
  readSafetensorsSteeringVector,
  readSteeringVectorFile,
  readTorchSteeringVector,
  type SteeringVectorFile,
  TORCH_VECTOR_KEYS,
} from "../train/steering-file.js";

/** A direction file from `emlab direction` (tensor `direction` [layers, d_model]), or a steering vector file (its vector, [d_model]). */
export function loadDirection(file: string, device: Tensor["device"] = "cpu"): Tensor {
  if (/\.pth?$/i.test(file)) {
    const read = readTorchSteeringVector(file);
    try {
      checkDirectionValues(read.vector, `${file}: vector`, file, false);
    } catch (error) {
      read.vector.dispose();
      throw error;
    }
    const moved = keep(tidy(() => read.vector.to(device)));
    if (moved !== read.vector) read.vector.dispose();
    return moved;
  }
  const { tensors } = loadSafetensors(file, { device });
  const direction = tensors.get("direction") ?? tensors.get("vector");
  for (const [name, t] of tensors) if (t !== direction) t.dispose();
  if (!direction) throw new RangeError(`${file}: no tensor named direction (or vector)`);
  try {
    checkDirectionValues(direction, `${file}: ${tensors.has("direction") ? "direction" : "vector"}`, file, false);
  } catch (error) {
    direction.dispose();
    throw error;
  }
  return keep(direction);
}
