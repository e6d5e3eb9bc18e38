/**
 * `emlab/train`: the training recipe and its run configs, chat datasets, loss terms, schedules,
 * steering vectors, init_from, optimizers and clipping, gradient checkpointing, the dataset loss and
 * seeded randomness, data-parallel training (c10d process groups, the rank launcher). Optimizer state
 * plumbing (groups, long-lived copies, restore checks) and the recipe's step arithmetic are not part of it.
 */
export {
  runTraining,
  runTrainingAsync,
  type StepMetrics,
  type TrainingError,
  trainingProgram,
  type TrainRunOptions,
  type TrainRunResult,
} from "../recipes/train.js";
export type { TrainingMethod } from "../train/methods/method.js";
export { type RawRunConfig, readRunConfig, resolveConfigPaths, resolveRunConfig, type RunConfig, RunConfigError } from "../train/config.js";
export {
  type Batch,
  type ChatExample,
  collate,
  DatasetError,
  epochBatches,
  type Example,
  heldOutSplit,
  readChatDataset,
  tokenizeExample,
  type TokenizeOptions,
} from "../train/data.js";
export { klPenalty, type LossContext, type LossTerm } from "../train/losses.js";
export { lrMultiplier, type ScheduleName } from "../train/schedule.js";
export { type SteeringRows, type SteeringSite, SteeringVector } from "../train/steering.js";
export { DirectionError, loadSteeringVector, readSteeringVectorFile, type SteeringVectorFile } from "../train/steering-file.js";
export { InitFromError, initLoraFrom, initSteeringFrom } from "../train/init-from.js";
export { latestCheckpoint, readCheckpointPosition, type TrainerPosition } from "../train/checkpoint.js";
export { MasterWeights } from "../train/master-weights.js";
export { backwardThrough, capturedPoints, type TrainerCallbacks, type TrainerModel, type TrainerState } from "../train/trainer.js";
export { RunDirectoryError, RunInputError } from "../train/inputs.js";
export { datasetLoss } from "../train/dataset-loss.js";
export { type CheckpointedPass, checkpointedForward } from "../train/checkpointed-forward.js";
export {
  AdamW,
  type AdamWOptions,
  clipGradNorm,
  type Optimizer,
  type OptimizerState,
  type ParamGroup,
  type ParamGroupSpec,
  SGD,
  type SGDOptions,
} from "../optim/index.js";
export { permutation, seededRandom, seedState } from "../random/seeded.js";
// Data-parallel training on c10d (Gloo / NCCL process groups, the rank launcher).
export {
  allReduceGradients,
  DEFAULT_BUCKET_BYTES,
  dataParallelOptions,
  dataParallelRefusal,
  type DataParallelSeam,
  runDataParallelTraining,
  shardRange,
} from "../distributed/data-parallel.js";
export {
  availableBackends,
  type DistributedBackend,
  DistributedError,
  type DistributedFailure,
  ProcessGroup,
  type ProcessGroupOptions,
  processGroupOptionsFromEnv,
} from "../distributed/process-group.js";
export { freePort, launchRanks, type LaunchOptions, type LaunchResult, trainDataParallel } from "../distributed/launcher.js";
