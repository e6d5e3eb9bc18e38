/**
 * `emlab/analysis`: the study's analyses as functions over a loaded model: activations and
 * mean-difference directions, steering and ablation (activations and LoRA B), efficiency, stability,
 * equal-norm comparison and significance of learned solutions, gradients and trajectories of runs,
 * the live monitor, the fixed loss subsets, and the files they read.
 */
export { type ActivationMeans, collectActivations, encodePair, type QaPair } from "../analysis/activations.js";
export { cosineMatrix, type DirectionResult, meanDiffDirection, type SplitCriteria, splitJudged } from "../analysis/directions.js";
export { DocumentsError, MAX_DOCUMENT_CHARS, readDocuments } from "../analysis/documents.js";
export {
  adapterEfficiency,
  adapterSignificance,
  compareAtEqualNorm,
  type ComparisonPoint,
  type CurvePoint,
  type NormSolution,
  significance,
  type SignificanceOptions,
  type SignificancePoint,
  type SignificanceVector,
  stability,
  type StabilityPoint,
  steeringEfficiency,
  withAdapterNorm,
  withSteeringNorm,
} from "../analysis/experiments.js";
export {
  checkDirectionValues,
  DirectionError,
  loadDirection,
  loadSteeringVector,
  readSafetensorsSteeringVector,
  readSteeringVectorFile,
  readTorchSteeringVector,
  type SteeringVectorFile,
} from "../analysis/files.js";
export { checkpointTrajectory, cosine, gradientNorms, lossGradient, pca } from "../analysis/gradients.js";
export { checkpointLossGradients, followsMethod, type LossGradientRow, type LossGradientRun } from "../analysis/checkpoint-gradients.js";
export { type ControlKind, generateWithIntervention, type InterventionRun, randomControlDirection } from "../analysis/intervention-run.js";
export {
  ablate,
  ablateLoraB,
  type DirectionRows,
  type LoraBAblationOptions,
  randomControl,
  rowFor,
  steer,
  studySteeringControl,
  studyUnitRandomVectors,
} from "../analysis/interventions.js";
export { datasetLoss, headerLastToken, type LossMask, lossSubset, studyLossExample, type SubsetDraw } from "../analysis/loss.js";
export { type MonitorEvent, monitorGeneration, type MonitorOptions } from "../analysis/monitor.js";
export { pythonRandomSample } from "../analysis/python-random.js";
export {
  adapterNorm,
  type AdapterSolution,
  bMatrices,
  moduleNorms,
  orthogonalPerturbation,
  perturbInPlace,
  rescaleAdapter,
  type RescaleMode,
  snapshot,
} from "../analysis/rescale.js";
export { significanceControls } from "../analysis/significance-controls.js";
export { attachedAdapterSolution, openNormSolution, type OpenSolution, openSteeringSolution } from "../analysis/solution-handles.js";
export {
  disposeTrajectory,
  jointPca,
  readRunTrajectory,
  type RunTrajectory,
  type TrajectoryRow,
  trajectoryRows,
} from "../analysis/trajectories.js";
