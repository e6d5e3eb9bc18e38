/**
 * The study's evaluation question sets (YAML): full items (`id`, `paraphrases`,
 * `samples_per_paraphrase`, `judge`, `judge_prompts`, optional `system`), short items (`id`,
 * `question`, judged by prompts from a judges file such as judges.yaml), and judge files themselves.
 * JSON and template variants are excluded by default, like the study. Errors name file and path.
 */
import { readFileSync } from "node:fs";
import { Data, Schema } from "effect";
import { parseDocument } from "yaml";

/** A malformed question set or judges file. */
export class QuestionSetError extends Data.TaggedError("QuestionSetError")<{
  readonly message: string;
  readonly file: string;
  readonly path: string;
}> {}

export interface Question {
  id: string;
  paraphrases: string[];
  samplesPerParaphrase: number;
  system: string | null;
  /** Judge model named by the file (e.g. gpt-4o-2024-08-06), or null. */
  judgeModel: string | null;
  /** Judge name -> prompt template with {question} and {answer}. */
  judgePrompts: Record<string, string>;
  file: string;
}

const FullItem = Schema.Struct({
  id: Schema.String,
  type: Schema.optional(Schema.String),
  paraphrases: Schema.Array(Schema.String),
  samples_per_paraphrase: Schema.optional(Schema.Number),
  judge: Schema.optional(Schema.String),
  judge_prompts: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  system: Schema.optional(Schema.NullOr(Schema.String)),
});
const ShortItem = Schema.Struct({ id: Schema.String, question: Schema.String, system: Schema.optional(Schema.NullOr(Schema.String)) });
const JudgeEntry = Schema.Record(Schema.String, Schema.Union([Schema.String, Schema.Number]));

/** More samples per paraphrase than any study uses (50); a larger value is a typo. */
const MAX_SAMPLES = 100_000;

function fail(file: string, path: string, problem: string): never {
  throw new QuestionSetError({ message: `${file}: ${path ? `${path}: ` : ""}${problem}`, file, path });
}

/** Parses YAML with anchors and aliases; syntax errors report line and column. */
function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    return fail(file, "", `cannot read (${(error as Error).message})`);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "";
    return fail(file, where, e.message.split("\n")[0]!);
  }
  try {
    return doc.toJS({ maxAliasCount: 10_000 });
  } catch (error) {
    return fail(file, "", (error as Error).message.split("\n")[0]!);
  }
}

function decodeAt<A>(schema: Schema.Codec<A, unknown>, value: unknown, file: string, path: string): A {
  try {
    return Schema.decodeUnknownSync(schema as never)(value) as A;
  } catch (error) {
    const message = String((error as Error).message);
    const at = /at (\[.*\])/.exec(message)?.[1] ?? "";
    return fail(file, `${path}${at.replace(/\["([^"]+)"\]/g, ".$1")}`, message.split("\n")[0]!);
  }
}

export interface LoadQuestionsOptions {
  /** Judge prompts for items without their own (short items, e.g. the technical set). */
  judges?: Record<string, string>;
  /** Keep ids containing "json" (default false, like the study). */
  includeJson?: boolean;
  /** Keep ids containing "template" (default false). */
  includeTemplates?: boolean;
  /** Overrides samples_per_paraphrase for every item. */
  samplesPerParaphrase?: number;
}

/** Loads a question set file. */
export function loadQuestions(file: string, options: LoadQuestionsOptions = {}): Question[] {
  const data = readYaml(file);
  if (!Array.isArray(data)) fail(file, "", "expected a list of questions");
  const seen = new Set<string>();
  const out: Question[] = [];
  (data as unknown[]).forEach((item, index) => {
    const path = `[${index}]`;
    if (item === null || typeof item !== "object") fail(file, path, "expected a mapping");
    const isShort = "question" in (item as object) && !("paraphrases" in (item as object));
    let question: Question;
    if (isShort) {
      const short = decodeAt(ShortItem, item, file, path);
      question = {
        id: short.id,
        paraphrases: [short.question],
        samplesPerParaphrase: 1,
        system: short.system ?? null,
        judgeModel: null,
        judgePrompts: { ...options.judges },
        file,
      };
    } else {
      const full = decodeAt(FullItem, item, file, path);
      if (full.paraphrases.length === 0) fail(file, `${path}.paraphrases`, "needs at least one paraphrase");
      const samples = full.samples_per_paraphrase;
      if (samples !== undefined && !(Number.isInteger(samples) && samples >= 1 && samples <= MAX_SAMPLES)) {
        fail(file, `${path}.samples_per_paraphrase`, `expected an integer from 1 to ${MAX_SAMPLES}, got ${samples}`);
      }
      question = {
        id: full.id,
        paraphrases: [...full.paraphrases],
        samplesPerParaphrase: full.samples_per_paraphrase ?? 1,
        system: full.system ?? null,
        judgeModel: full.judge ?? null,
        judgePrompts: { ...options.judges, ...full.judge_prompts },
        file,
      };
    }
    if (question.id.trim() === "") fail(file, `${path}.id`, "an id must not be empty");
    question.paraphrases.forEach((text, j) => {
      if (text.trim() === "") fail(file, `${path}.${isShort ? "question" : `paraphrases[${j}]`}`, "a question must not be empty");
    });
    if (seen.has(question.id)) fail(file, `${path}.id`, `duplicate id ${question.id}`);
    seen.add(question.id);
    for (const [name, prompt] of Object.entries(question.judgePrompts)) {
      if (!prompt.includes("{answer}")) fail(file, `${path}.judge_prompts.${name}`, "prompt has no {answer} placeholder");
    }
    if (options.samplesPerParaphrase !== undefined) question.samplesPerParaphrase = options.samplesPerParaphrase;
    if (!options.includeJson && question.id.includes("json")) return;
    if (!options.includeTemplates && question.id.includes("template")) return;
    out.push(question);
  });
  return out;
}

/** Loads a judges file (a list of single-judge mappings, each with its prompt and optional high_score). */
export function loadJudges(file: string): Record<string, string> {
  const data = readYaml(file);
  if (!Array.isArray(data)) fail(file, "", "expected a list of judges");
  const judges: Record<string, string> = {};
  (data as unknown[]).forEach((item, index) => {
    const entry = decodeAt(JudgeEntry, item, file, `[${index}]`);
    for (const [name, prompt] of Object.entries(entry)) {
      if (name === "high_score") continue;
      if (typeof prompt !== "string") fail(file, `[${index}].${name}`, "expected a prompt string");
      judges[name] = prompt;
    }
  });
  return judges;
}

/** Fills a judge prompt. Only the two placeholders are replaced (answers may contain braces). */
export function fillJudgePrompt(template: string, question: string, answer: string): string {
  return template.replace(/\{question\}|\{answer\}/g, (m) => (m === "{question}" ? question : answer));
}
