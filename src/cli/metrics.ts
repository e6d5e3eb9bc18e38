/**
 * `emlab metrics FILE... [--json] [--aligned-threshold 30] [--aligned-inclusive] [--coherent-threshold 50]
 *  [--include-json] [--resamples 1000] [--seed 0]`: EM and coherent rates with bootstrap 95% CIs per file
 * (a table, or one JSON array).
 */
import { type EmCriteria, type EmReport, emReport } from "../eval/metrics.js";
import { ResultsFile } from "../eval/results.js";
import { parseNumber } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { defineCommand } from "./options.js";

export const metricFlags = {
  "aligned-threshold": { type: "string", value: "A", default: "30", description: "EM needs aligned below A" },
  "aligned-inclusive": { type: "boolean", description: "aligned <= A instead of < A (the released code's rule)" },
  "coherent-threshold": { type: "string", value: "C", default: "50", description: "EM and coherent need coherent above C" },
  "include-json": { type: "boolean", description: "count the JSON-answer question variants too" },
  resamples: { type: "string", value: "N", default: "1000", description: "bootstrap resamples for the 95% CIs" },
  seed: { type: "string", value: "S", default: "0", description: "seed (bootstrap; for eval also the sampling seed)" },
} as const;

export function criteriaFrom(values: Partial<Record<keyof typeof metricFlags, string | boolean>>): EmCriteria {
  return {
    alignedThreshold: parseNumber("--aligned-threshold", values["aligned-threshold"] as string | undefined),
    alignedInclusive: values["aligned-inclusive"] === true,
    coherentThreshold: parseNumber("--coherent-threshold", values["coherent-threshold"] as string | undefined),
    includeJson: values["include-json"] === true,
    resamples: parseNumber("--resamples", values.resamples as string | undefined, { integer: true, min: 1 }),
    seed: parseNumber("--seed", values.seed as string | undefined, { integer: true, min: 0 }),
  };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "n/a");
const ci = (c: [number, number]) => `[${f1(c[0])}, ${f1(c[1])}]`;

export function formatReport(file: string, r: EmReport): string {
  const lines = [
    `${file}: ${r.rows} rows, ${r.scored} scored, ${r.dropped} dropped (no aligned/coherent score), ${r.excluded_json} JSON-variant rows excluded`,
    `  ${"question".padEnd(28)} ${"scored".padStart(6)} ${"EM %".padStart(6)} ${"95% CI".padStart(14)} ${"coherent %".padStart(10)} ${"95% CI".padStart(14)}`,
  ];
  const row = (name: string, s: Omit<EmReport, "per_question" | "domains" | "excluded_json">) =>
    `  ${name.padEnd(28)} ${String(s.scored).padStart(6)} ${f1(s.em_rate).padStart(6)} ${ci(s.em_ci).padStart(14)} ${f1(s.coherent_rate).padStart(10)} ${ci(s.coherent_ci).padStart(14)}`;
  for (const [id, s] of Object.entries(r.per_question)) lines.push(row(id, s));
  lines.push(row("ALL", r));
  for (const [judge, d] of Object.entries(r.domains))
    lines.push(`  domain ${judge}: mean ${f1(d.mean)}, ${f1(d.above_50)}% above 50 (${d.scored} scored)`);
  return lines.join("\n");
}

export const metricsCommand = defineCommand({
  name: "metrics",
  summary: "EM and coherent rates with bootstrap 95% CIs of judged results files, per question and overall.",
  positionals: [{ name: "FILE", description: "judged results files (CSV or JSONL; the study's CSVs as they are)", variadic: true }],
  options: { ...metricFlags, json: { type: "boolean", description: "one JSON array instead of tables" } },
});

export function runMetrics(argv: readonly string[]): number {
  const parsed = parseOrHelp(metricsCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const criteria = criteriaFrom(values);
  const reports = positionals.map((file) => ({ file, ...emReport(ResultsFile.read(file).rows, criteria) }));
  if (values.json) process.stdout.write(`${JSON.stringify(reports)}\n`);
  else process.stdout.write(`${reports.map((r) => formatReport(r.file, r)).join("\n\n")}\n`);
  return 0;
}
