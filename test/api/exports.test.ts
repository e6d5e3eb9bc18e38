// The public API as a package user sees it: each subpath of package.json's "exports" is imported by
// name ("emlab/tensor", ...) from the built dist/ in a child Node process (package self-reference, so
// the exports map itself is exercised), and its runtime export list must equal the list written here.
// Internals must be absent everywhere, and the published typings must not show Tensor's handle.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const built = existsSync("dist/api/tensor.js");

const EXPECTED: Record<string, string[]> = {
  "emlab/tensor": [
    "DeviceUnavailableError", "DisposedTensorError", "InternalTorchError", "InvalidArgumentError", "NotImplementedError", "OutOfMemoryError",
    "SafetensorsError", "Tensor", "TensorScope", "TorchFileError", "allDTypes", "arange", "buildConfig", "builtWithCuda", "cat",
    "checkDeviceAvailable", "crossEntropy", "cuda", "disposeTorchValue", "dropout", "einsum", "embedding", "empty", "enableGrad", "eye",
    "full", "getRngState", "grad", "inferenceMode", "isFloating", "isGradEnabled", "isInferenceMode", "isTorchError", "itemSize", "keep",
    "klDiv", "layerNorm", "linear", "linspace", "liveTensorCount", "loadSafetensors", "loadTorchFile", "logSoftmax", "manualSeed", "matmul",
    "mseLoss", "noGrad", "normalizeDevice", "numThreads", "ones", "onesLike", "parallelInfo", "rand", "randint", "randn", "randnLike",
    "readSafetensorsHeader", "saveSafetensors", "scaledDotProductAttention", "setNumThreads", "setRngState", "softmax", "stack", "tensor",
    "tensorScope", "tidy", "torchVersion", "where", "zeros", "zerosLike",
  ],
  "emlab/models": [
    "ActivationCache", "AdapterError", "AdapterSet", "ChatTokenizer", "Decoder", "IdShapeError", "KvCache", "LoraAdapter", "ModelConfigError",
    "ModelWeightsError", "TokenizerError", "UnsupportedArchitectureError", "addHook", "attachPeftAdapters", "captureHook", "causalLmLoss",
    "generate", "gradientHook", "isHookPoint", "isTarget", "layerPoint", "layerPoints", "linearModuleName", "linearModules", "loadModel",
    "loadPeftAdapter", "loadPeftAdapters", "parseLayerPoint", "patchActivations", "patternPoints", "plainProjections", "projectOutHook",
    "readGenerationConfig", "readHfConfig", "resolveAdapterDirs", "runWithCache", "savePeftAdapter", "writeRandomModel",
  ],
  "emlab/train": [
    "AdamW", "DatasetError", "DirectionError", "InitFromError", "MasterWeights", "RunConfigError", "RunInputError", "SGD", "SteeringVector",
    "backwardThrough", "capturedPoints", "checkpointedForward", "clipGradNorm", "collate", "datasetLoss", "epochBatches", "heldOutSplit",
    "initLoraFrom", "initSteeringFrom", "klPenalty", "latestCheckpoint", "loadSteeringVector", "lrMultiplier", "permutation", "readChatDataset",
    "readCheckpointPosition", "readRunConfig", "readSteeringVectorFile", "resolveConfigPaths", "resolveRunConfig", "runTraining",
    "runTrainingAsync", "seedState", "seededRandom", "tokenizeExample", "trainingProgram",
    // data-parallel training (src/train/data-parallel.ts, src/distributed/)
    "DEFAULT_BUCKET_BYTES", "DistributedError", "ProcessGroup", "allReduceGradients", "availableBackends", "dataParallelOptions",
    "dataParallelRefusal", "freePort", "launchRanks", "processGroupOptionsFromEnv", "runDataParallelTraining", "shardRange", "trainDataParallel",
  ],
  "emlab/eval": [
    "InvalidJudgeReply", "JudgeCache", "JudgeError", "LocalJudge", "OpenAIJudge", "QuestionSetError", "RemoteSamplingError", "ResultsFile", "ResultsFileError",
    "bootstrapRateCi", "cohenKappa", "emLabel", "emReport", "fillJudgePrompt", "isRetryableReason", "judgeAgreement", "judgeRetrySchedule",
    "judgeRows", "loadJudges", "loadQuestions",
    "parseTopLogprobs", "pearson", "promptsFrom", "ranks", "sampleResponses", "sampleResponsesRemote", "sampleResponsesRemoteEffect", "scoreFromTopLogprobs", "scoreOf", "seedState", "seededRandom",
    "spearman",
  ],
  "emlab/effect": [
    "FileSystemError", "InvalidSetupError", "JudgeCacheService", "JudgeService", "ModelService", "RunDirectory", "RunDirectoryLockedError",
    "acquireDisposable", "boundary", "evaluate", "evaluateProgram", "functionJudge", "loadTokenizer", "lockRunDirectory", "runPromise",
    "scopedHook", "scopedKvCache", "scopedLoraAdapter", "scopedMasterWeights", "scopedModel", "scopedModelWithTokenizer", "scopedOptimizer",
    "scopedPeftAdapter", "scopedRunDirectory", "scopedStep", "scopedSteeringVector", "scopedTensor", "seededRandomness", "step", "train",
    "trainProgram",
  ],
  "emlab/analysis": [
    "DirectionError", "DocumentsError", "MAX_DOCUMENT_CHARS", "ablate", "ablateLoraB", "adapterEfficiency", "adapterNorm", "adapterSignificance",
    "attachedAdapterSolution", "bMatrices", "checkDirectionValues", "checkpointLossGradients", "checkpointTrajectory", "collectActivations", "compareAtEqualNorm", "cosine",
    "cosineMatrix", "datasetLoss", "disposeTrajectory", "encodePair", "followsMethod", "generateWithIntervention", "gradientNorms", "headerLastToken", "jointPca",
    "loadDirection", "loadSteeringVector", "lossGradient", "lossSubset", "meanDiffDirection", "moduleNorms", "monitorGeneration",
    "openNormSolution", "openSteeringSolution", "orthogonalPerturbation", "pca", "perturbInPlace", "pythonRandomSample", "randomControl",
    "randomControlDirection", "readDocuments", "readRunTrajectory", "readSafetensorsSteeringVector", "readSteeringVectorFile",
    "readTorchSteeringVector", "rescaleAdapter", "rowFor", "significance", "significanceControls", "snapshot", "splitJudged", "stability", "steer",
    "steeringEfficiency", "studyLossExample", "studySteeringControl", "studyUnitRandomVectors", "trajectoryRows", "withAdapterNorm",
    "withSteeringNorm",
  ],
};

/** Internals no entry point may export. */
const INTERNALS = [
  "longLived", "restoreFor", "makeGroups", "zeroGrads", "checkLayout", "trackUnowned", "makeTorchError", "dtypeCode", "dtypeFromCode",
  "hostArray", "native", "expectedWeights", "ropeFrom", "tokenIds", "chooseNext", "idTensor", "leftPad", "resolveSampling", "ceFactor",
  "klFactor", "lossTargets", "snapshotGradients", "checkRunInputs", "removeStaleCheckpointTemporaries", "saveCheckpoint", "loadCheckpoint",
  "FailTrainingAt", "enterStage", "trainStep", "LOCK_FILE", "asBoundaryError",
];

/** Export names of `specifiers`, each imported by a fresh Node process through the package's exports map. */
function exportsOf(specifiers: string[]): Record<string, string[]> {
  const script = `const out = {}; for (const s of ${JSON.stringify(specifiers)}) out[s] = Object.keys(await import(s)).sort(); console.log(JSON.stringify(out));`;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }));
}

describe.skipIf(!built)("public API subpaths (from dist/; run `npx tsc -p tsconfig.build.json` first)", () => {
  const subpaths = Object.keys(EXPECTED);
  const seen = exportsOf([...subpaths, "emlab"]);

  it("package.json maps every subpath to dist/api", () => {
    const exportsMap = JSON.parse(readFileSync("package.json", "utf8")).exports as Record<string, unknown>;
    for (const subpath of subpaths) expect(exportsMap[`./${subpath.slice("emlab/".length)}`]).toBeDefined();
  });

  for (const subpath of subpaths) {
    it(`${subpath} exports exactly its list`, () => {
      expect(seen[subpath]).toEqual([...EXPECTED[subpath]!].sort());
    });
  }

  it("the root entry point carries every subpath's exports", () => {
    for (const subpath of subpaths) for (const name of EXPECTED[subpath]!) expect(seen.emlab).toContain(name);
  });

  it("no entry point exports an internal", () => {
    for (const [specifier, names] of Object.entries(seen)) expect({ specifier, leaked: names.filter((n) => INTERNALS.includes(n)) }).toEqual({ specifier, leaked: [] });
  });

  it("an internal module path is not importable (only the listed subpaths are)", () => {
    expect(() => exportsOf(["emlab/dist/optim/optimizer.js"])).toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it("the published typings hide Tensor's mutable handle fields", () => {
    const typings = readFileSync("dist/tensor/tensor.d.ts", "utf8");
    expect(typings).toMatch(/class Tensor/);
    expect(typings).not.toMatch(/^\s+handle: Handle;/m);
    expect(typings).not.toMatch(/^\s+released: boolean;/m);
  });
});
