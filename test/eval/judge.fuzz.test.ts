// Property-based tests of judge replies and what is made of them (src/eval/judge/score.ts, cache.ts,
// redact.ts): arbitrary JSON as top_logprobs is either refused with an InvalidJudgeReply or a valid
// distribution's top entries; scores equal an independent computation of the study's rule; the cache
// reader never throws and never serves an entry whose alternatives do not give back its score; a
// registered secret is gone from any text it is embedded in. Budget: test/helpers/fuzz.ts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JudgeCache } from "../../src/eval/judge/cache.js";
import { redact, redactSecrets, registerSecret, unregisterSecret } from "../../src/eval/judge/redact.js";
import { InvalidJudgeReply, parseTopLogprobs, scoreFromTopLogprobs } from "../../src/eval/judge/score.js";
import { fuzzParameters } from "../helpers/fuzz.js";

let work = "";
let counter = 0;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "emlab-judge-fuzz-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const hostileNumber = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, 1e308, -1e308, 1e-320, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5, -0.1),
);
const hostileValue = fc.oneof(
  hostileNumber,
  fc.string({ maxLength: 5 }),
  fc.constant(null),
  fc.boolean(),
  fc.constant(undefined),
  fc.array(fc.integer(), { maxLength: 2 }),
);
const tokenText = fc.oneof(
  fc.constantFrom("0", "50", "100", "101", " 7", "07", "+3", "-3", "5.5", "1_0", "REFUSAL", "CODE", "", "٣"),
  fc.integer({ min: 0, max: 120 }).map(String),
);
const entry = fc.oneof(
  { weight: 3, arbitrary: fc.record({ token: tokenText, logprob: fc.double({ min: -30, max: 0, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ token: fc.oneof(tokenText, hostileValue), logprob: hostileValue }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: hostileValue },
);
const replyArb = fc.oneof({ weight: 4, arbitrary: fc.array(entry, { maxLength: 20 }) }, { weight: 1, arbitrary: hostileValue });

/**
 * The study's rule written independently: a dict keyed by token (last wins), Python int(), [0, 100], mass >= 0.25.
 * A Map, like Python's dict, iterates in first-insertion order (a JS object would list integer-like keys
 * first, summing in another order: at minimumMass 1 that flipped a mass of 1 - 1 ulp, seed 1770155953).
 */
function reference(top: { token: string; logprob: number }[], minimumMass = 0.25): { score: number | null; mass: number } {
  const dict = new Map<string, number>();
  for (const t of top) dict.set(t.token, Math.exp(t.logprob));
  let mass = 0;
  let sum = 0;
  for (const [token, p] of dict) {
    const trimmed = token.trim();
    if (!/^[+-]?[0-9]+(_[0-9]+)*$/.test(trimmed)) continue;
    const k = Number(trimmed.replace(/_/g, ""));
    if (k < 0 || k > 100) continue;
    mass += p;
    sum += k * p;
  }
  return { score: mass >= minimumMass && mass > 0 ? sum / mass : null, mass };
}

describe("judge replies", () => {
  it("parseTopLogprobs: InvalidJudgeReply, or string tokens with finite logprobs <= 0 summing to at most 1", () => {
    fc.assert(
      fc.property(replyArb, (reply) => {
        let top: ReturnType<typeof parseTopLogprobs>;
        try {
          top = parseTopLogprobs(reply);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidJudgeReply);
          return;
        }
        let total = 0;
        for (const t of top) {
          expect(typeof t.token).toBe("string");
          expect(Number.isFinite(t.logprob)).toBe(true);
          expect(t.logprob).toBeLessThanOrEqual(0);
          total += Math.exp(t.logprob);
        }
        expect(total).toBeLessThanOrEqual(1 + 1e-3);
      }),
      fuzzParameters(1000),
    );
  });

  it("scores of valid replies equal the independent computation and lie in [0, 100]", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ token: tokenText, p: fc.double({ min: 1e-12, max: 1, noNaN: true }) }), { maxLength: 20 }),
        fc.constantFrom(0.25, 0, 0.5, 1),
        (raw, minimumMass) => {
          const total = raw.reduce((a, b) => a + b.p, 0);
          const top = raw.map(({ token, p }) => ({ token, logprob: Math.log(total > 1 ? p / total : p) }));
          const ours = scoreFromTopLogprobs(top, minimumMass);
          const want = reference(top, minimumMass);
          expect(ours.numericMass).toBeCloseTo(want.mass, 12);
          if (want.score === null) expect(ours.score).toBeNull();
          else {
            expect(ours.score).not.toBeNull();
            expect(Math.abs(ours.score! - want.score)).toBeLessThan(1e-9);
            expect(ours.score!).toBeGreaterThanOrEqual(0);
            expect(ours.score!).toBeLessThanOrEqual(100);
          }
        },
      ),
      fuzzParameters(1000),
    );
  });
});

describe("judge cache files", () => {
  const line = fc.oneof(
    fc
      .record({
        key: fc.constantFrom("k1", "k2"),
        model: fc.constant("m"),
        score: fc.oneof(fc.constant(null), hostileNumber),
        numericMass: hostileNumber,
        top: replyArb,
      })
      .map((e) => JSON.stringify(e)),
    fc.string({ maxLength: 30 }),
    fc.constantFrom('{"key":"k1","score":', "null", "[]", '{"key":1}'),
  );

  it("any content: the reader never throws or writes, and serves only entries whose alternatives give back their score", () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
        const path = join(work, `cache-${counter++}.jsonl`);
        const text = lines.join("\n");
        writeFileSync(path, text);
        const cache = new JudgeCache(path);
        expect(readFileSync(path, "utf8")).toBe(text);
        for (const key of ["k1", "k2"]) {
          const entry = (
            cache as unknown as {
              entries: Map<string, { score: number | null; numericMass: number; top: { token: string; logprob: number }[] }>;
            }
          ).entries.get(key);
          if (!entry) continue;
          const want = reference(parseTopLogprobs(entry.top), 0);
          expect(Math.abs(want.mass - entry.numericMass)).toBeLessThan(1e-9);
          if (entry.score !== null) expect(Math.abs(want.score! - entry.score)).toBeLessThan(1e-9);
        }
      }),
      fuzzParameters(500),
    );
  });
});

describe("redaction", () => {
  const keyChars = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");
  it("a registered key is gone from any text it is embedded in, in any form", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: keyChars, minLength: 12, maxLength: 40 }),
        fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('"', "Bearer ", "api-key: ", "?key=", "\\", "%", "sk-")), {
          maxLength: 6,
        }),
        fc.constantFrom("plain", "uri", "json", "header", "query"),
        (key, parts, form) => {
          registerSecret(key);
          const shown =
            form === "uri"
              ? encodeURIComponent(key)
              : form === "json"
                ? JSON.stringify({ authorization: `Bearer ${key}` })
                : form === "header"
                  ? `authorization: Bearer ${key}`
                  : form === "query"
                    ? `?api-key=${key}`
                    : key;
          const text = [...parts.slice(0, 3), shown, ...parts.slice(3)].join("");
          try {
            expect(redactSecrets(text)).not.toContain(key);
            expect(redact(text)).not.toContain(key);
          } finally {
            unregisterSecret(key);
          }
        },
      ),
      fuzzParameters(500),
    );
  });
});
