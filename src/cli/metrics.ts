/**
 * `emlab metrics FILE... [--json] [--aligned-threshold 30] [--aligned-inclusive] [--coherent-threshold 50]
 *  [--include-json] [--resamples 1000] [--seed 0]`: EM and coherent rates with bootstrap 95% CIs per file
 * (a table, or one JSON array).
 */
import { parseArgs } from "node:util";
import { type EmCriteria, type EmReport, emReport } from "../eval/metrics.js";
import { ResultsFile } from "../eval/results.js";
import { parseNumber, UsageError } from "./args.js";

export const metricFlags = {
  "aligned-threshold": { type: "string" },
  "aligned-inclusive": { type: "boolean", default: false },
  "coherent-threshold": { type: "string" },
  "include-json": { type: "boolean", default: false },
  resamples: { type: "string" },
  seed: { type: "string" },
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
  for (const [judge, d] of Object.entries(r.domains)) lines.push(`  domain ${judge}: mean ${f1(d.mean)}, ${f1(d.above_50)}% above 50 (${d.scored} scored)`);
  return lines.join("\n");
}

export function runMetrics(argv: readonly string[]): number {
  const { values, positionals } = parseArgs({ args: [...argv], options: { ...metricFlags, json: { type: "boolean", default: false } }, allowPositionals: true, strict: true });
  if (positionals.length === 0) throw new UsageError("metrics needs at least one results file");
  const criteria = criteriaFrom(values);
  const reports = positionals.map((file) => ({ file, ...emReport(ResultsFile.read(file).rows, criteria) }));
  if (values.json) process.stdout.write(`${JSON.stringify(reports)}\n`);
  else process.stdout.write(`${reports.map((r) => formatReport(r.file, r)).join("\n\n")}\n`);
  return 0;
}
