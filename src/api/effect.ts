/**
 * `emlab/effect`: the Effect side of emlab (src/effect): typed boundary errors, `step` / `scopedStep`
 * for the tensor hot path, scoped constructors for every native resource, services and layers (model,
 * judge, judge cache, run directory, seeded randomness), the evaluation and analysis programs, and the Promise
 * facade (`train`, `evaluate`, `runPromise`). Lock-file names and error-conversion helpers stay inside.
 */
export { directionProgram, type DirectionProgramOptions } from "../effect/analysis.js";
export {
  type CompareNormsProgramOptions,
  type CompareNormsResult,
  compareNormsProgram,
  efficiencyProgram,
  type EfficiencyProgramOptions,
  interventionProgram,
  type InterventionProgramOptions,
  lossGradientsProgram,
  type LossGradientsProgramOptions,
  scopedDirectionFile,
  scopedNormSolution,
  scopedPeftAdapters,
  scopedRandomControl,
  scopedSolution,
  significanceProgram,
  type SignificanceProgramOptions,
  type SignificanceResult,
  type SolutionSource,
  stabilityProgram,
  type StabilityProgramOptions,
} from "../effect/analysis-programs.js";
export { type MonitorProgramOptions, type MonitorResult, monitorProgram } from "../effect/monitor-program.js";
export {
  scopedRunTrajectory,
  trajectoriesProgram,
  type TrajectoriesProgramOptions,
  type TrajectoriesResult,
} from "../effect/trajectory-program.js";
export { boundary, type BoundaryError, FileSystemError, InvalidSetupError } from "../effect/errors.js";
export { type EvaluateOptions, evaluateProgram, type EvaluateResult } from "../effect/evaluate.js";
export { evaluate, type EvaluateScriptOptions, type JudgeChoice, train, trainProgram } from "../effect/facade.js";
export {
  acquireDisposable,
  loadTokenizer,
  scopedHook,
  scopedKvCache,
  scopedLoraAdapter,
  scopedMasterWeights,
  scopedModel,
  scopedModelWithTokenizer,
  scopedOptimizer,
  scopedPeftAdapter,
  scopedSteeringVector,
  scopedTensor,
} from "../effect/resources.js";
export { lockRunDirectory, type RunDirectoryLock, RunDirectoryLockedError, scopedRunDirectory } from "../effect/run-directory.js";
export { runPromise } from "../effect/run-promise.js";
export {
  functionJudge,
  JudgeCacheService,
  JudgeService,
  ModelService,
  RunDirectory,
  type ScoreFunction,
  seededRandomness,
} from "../effect/services.js";
export { scopedStep, step } from "../effect/step.js";
