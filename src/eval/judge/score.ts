/**
 * The study's judge score: from the first output token's top-20 alternatives, keep those that parse
 * as integers in [0, 100]; score = sum(k * p_k) / sum(p_k); no score when sum(p_k) < 0.25 (this is
 * how "CODE", "REFUSAL" and other non-numeric answers drop out). Alternatives are keyed by their text
 * and a later duplicate replaces an earlier one, as the study's dict did.
 */

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

export function scoreFromTopLogprobs(top: readonly TopLogprob[], minimumMass = 0.25): JudgeScore {
  const byToken = new Map<string, number>();
  for (const { token, logprob } of top) byToken.set(token, Math.exp(logprob));
  let mass = 0;
  let weighted = 0;
  for (const [token, p] of byToken) {
    const k = parseInteger(token);
    if (k === null || k < 0 || k > 100) continue;
    mass += p;
    weighted += k * p;
  }
  return { score: mass < minimumMass ? null : weighted / mass, numericMass: mass, top: [...top] };
}
