/**
 * `emlab/eval`: question sets, sampling answers, judges (OpenAI-compatible, local model, cache,
 * scoring), results files, emergent-misalignment metrics and the statistics behind them.
 */
export { JudgeCache } from "../eval/judge/cache.js";
export { isRetryableReason, type Judge, JudgeError, type JudgeFailureReason } from "../eval/judge/judge.js";
export { judgeRetrySchedule, type RetryPolicy } from "../eval/judge/retry.js";
export { LocalJudge } from "../eval/judge/local.js";
export { OpenAIJudge, type OpenAIJudgeOptions } from "../eval/judge/openai.js";
export { judgeRows, type JudgeRowsOptions, type JudgeSummary, promptsFrom } from "../eval/judge/run.js";
export { InvalidJudgeReply, type JudgeScore, parseTopLogprobs, scoreFromTopLogprobs, type TopLogprob } from "../eval/judge/score.js";
export { type Agreement, type EmCriteria, emLabel, emReport, type EmReport, judgeAgreement, type RateStats } from "../eval/metrics.js";
export {
  fillJudgePrompt,
  loadJudges,
  loadQuestions,
  type LoadQuestionsOptions,
  type Question,
  QuestionSetError,
} from "../eval/questions.js";
export { type Cell, type ResultRow, ResultsFile, ResultsFileError, scoreOf, type SetAside } from "../eval/results.js";
export { type SampleOptions, sampleResponses, sampleResponsesEffect } from "../eval/sample.js";
export { type RemoteEndpoint, RemoteSamplingError, sampleResponsesRemote, sampleResponsesRemoteEffect } from "../eval/remote-sample.js";
export { bootstrapRateCi, cohenKappa, pearson, ranks, spearman } from "../eval/stats.js";
export { seededRandom, seedState } from "../random/seeded.js";
