/** Typed errors of model loading: bad config, unknown architecture, missing or mis-shaped weights. */
import { Data } from "effect";

/** config.json (or generation_config.json) is unreadable or invalid; `file` and the field path are named. */
export class ModelConfigError extends Data.TaggedError("ModelConfigError")<{
  readonly message: string;
  readonly file: string;
}> {}

/** No family supports this architecture / model_type. */
export class UnsupportedArchitectureError extends Data.TaggedError("UnsupportedArchitectureError")<{
  readonly message: string;
  readonly file: string;
  readonly architecture: string;
}> {}

/** A weight is missing, has the wrong shape, or its file is broken. */
export class ModelWeightsError extends Data.TaggedError("ModelWeightsError")<{
  readonly message: string;
  readonly file: string;
  readonly tensor: string;
}> {}
