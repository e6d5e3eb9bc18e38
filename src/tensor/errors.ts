/**
 * Typed errors of the tensor layer: the errors native ops raise (defined with the addon's loader in
 * src/native/errors.ts, which registers their factory with the addon), re-exported here.
 */
export {
  DeviceUnavailableError,
  DisposedTensorError,
  InternalTorchError,
  InvalidArgumentError,
  isTorchError,
  makeTorchError,
  NotImplementedError,
  OutOfMemoryError,
  type TorchError,
} from "../native/errors.js";
