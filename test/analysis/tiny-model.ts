// Kept only for test/analysis/cli*.test.ts, which still import from here: the tiny model and fixtures
// live in test/helpers/tiny-model.ts, the vector helpers in test/helpers/numeric.ts. New tests import
// those directly; this file goes once the CLI tests do.
export { MEDICAL, makeTinyModel, QWEN2_TINY, RESPONSES, SHORT_PAIRS } from "../helpers/tiny-model.js";
export { cos, dot, fixedTensor, values as host, maxAbs, maxAbsDiff, norm, rows } from "../helpers/numeric.js";
