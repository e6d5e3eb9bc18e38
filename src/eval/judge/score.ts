/**
 * The study's judge score: from the first output token's top-20 alternatives, keep those that parse
 * as integers in [0, 100]; score = sum(k * p_k) / sum(p_k); no score when sum(p_k) < 0.25 (this is
 * how "CODE", "REFUSAL" and other non-numeric answers drop out). Alternatives are keyed by their text
 * and a later duplicate replaces an earlier one, as the study's dict did. Replies are validated first:
 * every alternative is a string token with a finite logprob <= 0, and their probabilities sum to at
 * most 1; anything else is an InvalidJudgeReply, never a score.
 */
import { Data } from "effect";

export interface TopLogprob {
  token: string;
  logprob: number;
}

export interface JudgeScore {
  /** Probability-weighted mean of the numeric alternatives, or null below the threshold. */
  score: number | null;
  /** Total probability of the numeric alternatives. */
  numericMass: number;
  /** The raw first-token alternatives the score came from. */
  top: TopLogprob[];
}

/** Python's int() on ASCII text: optional sign, surrounding whitespace, single underscores between digits. */
function parseInteger(text: string): number | null {
  return /^\s*[+-]?\d+(?:_\d+)*\s*$/.test(text) ? Number.parseInt(text.trim().replace(/_/g, ""), 10) : null;
}

/** A judge reply whose first-token alternatives are not a probability distribution's top entries. */
export class InvalidJudgeReply extends Data.TaggedError("InvalidJudgeReply")<{ readonly message: string }> {}

/** Slack on the probability total, for logprobs rounded by the server. */
const TOTAL_TOLERANCE = 1e-3;

/**
 * The alternatives of a reply (`top_logprobs` as received, of unknown shape) after strict checks: a
 * list of `{token: string, logprob: finite number <= 0}` whose probabilities sum to at most 1.
 */
export function parseTopLogprobs(value: unknown): TopLogprob[] {
  const bad = (problem: string): never => {
    throw new InvalidJudgeReply({ message: `invalid top_logprobs: ${problem}` });
  };
  if (!Array.isArray(value)) return bad(`expected a list, got ${value === null ? "null" : typeof value}`);
  let total = 0;
  const top = value.map((entry: unknown, i): TopLogprob => {
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) return bad(`entry ${i} is not an object`);
    const { token, logprob } = entry as { token?: unknown; logprob?: unknown };
    if (typeof token !== "string") return bad(`entry ${i}: token is ${token === null ? "null" : typeof token}, not a string`);
    if (typeof logprob !== "number") return bad(`entry ${i}: logprob is ${logprob === null ? "null" : typeof logprob}, not a number`);
    if (!Number.isFinite(logprob)) return bad(`entry ${i}: logprob ${logprob} is not finite`);
    if (logprob > 0) return bad(`entry ${i}: logprob ${logprob} > 0 (a probability above 1)`);
    total += Math.exp(logprob);
    return { token, logprob };
  });
  if (total > 1 + TOTAL_TOLERANCE) bad(`the alternatives' probabilities sum to ${total}, more than 1`);
  return top;
}

/** The study's score from validated alternatives (throws InvalidJudgeReply on invalid ones). */
export function scoreFromTopLogprobs(top: readonly TopLogprob[], minimumMass = 0.25): JudgeScore {
  const valid = parseTopLogprobs(top);
  const byToken = new Map<string, number>();
  for (const { token, logprob } of valid) byToken.set(token, Math.exp(logprob));
  let mass = 0;
  let weighted = 0;
  for (const [token, p] of byToken) {
    const k = parseInteger(token);
    if (k === null || k < 0 || k > 100) continue;
    mass += p;
    weighted += k * p;
  }
  // A weighted mean of integers in [0, 100]; the clamp only absorbs rounding.
  const score = mass < minimumMass || mass === 0 ? null : Math.min(100, Math.max(0, weighted / mass));
  return { score, numericMass: mass, top: valid };
}
