/**
 * Typed errors of native ops. The addon builds them directly through `makeTorchError`, which the
 * loader (addon.ts) registers with the addon when it loads it, so a failing op throws one of these,
 * never a bare Error. Each carries the op name and, for libtorch failures, libtorch's own message.
 * The tensor layer re-exports them (src/tensor/errors.ts).
 */
import { Data } from "effect";

interface TorchErrorFields {
  readonly message: string;
  readonly op: string;
  readonly torchMessage: string;
}

/** Bad shapes, dtypes, indices or values rejected by libtorch. */
export class InvalidArgumentError extends Data.TaggedError("InvalidArgumentError")<TorchErrorFields> {}
/** Host or device allocation failed. */
export class OutOfMemoryError extends Data.TaggedError("OutOfMemoryError")<TorchErrorFields> {}
/** The requested device does not exist or this libtorch has no backend for it. */
export class DeviceUnavailableError extends Data.TaggedError("DeviceUnavailableError")<TorchErrorFields> {}
/** An op with no kernel for this dtype/device combination. */
export class NotImplementedError extends Data.TaggedError("NotImplementedError")<TorchErrorFields> {}
/** A tensor was used after dispose(). */
export class DisposedTensorError extends Data.TaggedError("DisposedTensorError")<TorchErrorFields> {}
/** libtorch's internal assertion or an unexpected C++ exception. */
export class InternalTorchError extends Data.TaggedError("InternalTorchError")<TorchErrorFields> {}

/** Every error an op can raise besides TypeError for wrong JS argument types. */
export type TorchError =
  InvalidArgumentError | OutOfMemoryError | DeviceUnavailableError | NotImplementedError | DisposedTensorError | InternalTorchError;

/** Maps the addon's error code to an error instance. */
export function makeTorchError(code: string, op: string, message: string, torchMessage: string): Error {
  const fields = { message, op, torchMessage };
  switch (code) {
    case "TYPE": {
      const error = new TypeError(message) as TypeError & { op: string };
      error.op = op;
      return error;
    }
    case "OUT_OF_MEMORY":
      return new OutOfMemoryError(fields);
    case "DEVICE_UNAVAILABLE":
      return new DeviceUnavailableError(fields);
    case "NOT_IMPLEMENTED":
      return new NotImplementedError(fields);
    case "DISPOSED":
      return new DisposedTensorError(fields);
    case "INVALID_ARGUMENT":
      return new InvalidArgumentError(fields);
    default:
      return new InternalTorchError(fields);
  }
}

/** True for any of the typed tensor errors. */
export function isTorchError(error: unknown): error is TorchError {
  return (
    error instanceof InvalidArgumentError ||
    error instanceof OutOfMemoryError ||
    error instanceof DeviceUnavailableError ||
    error instanceof NotImplementedError ||
    error instanceof DisposedTensorError ||
    error instanceof InternalTorchError
  );
}
