/**
 * `emlab report DIR [--out FILE.html] [--json]`: writes DIR/report.html (self-contained: inline SVG
 * figures and styles, no script, no network) and the plot data in DIR/report-data/, then prints the
 * report's path and a short table of its headline numbers (or JSON with --json).
 */
import { writeReport } from "../report/html.js";
import { parseOrHelp } from "./generate.js";
import { defineCommand } from "./options.js";

export const reportCommand = defineCommand({
  name: "report",
  summary: "A self-contained HTML report (figures as inline SVG, no script, no network) of an experiment directory.",
  positionals: [{ name: "DIR", description: "experiment directory (holds manifest.json)" }],
  options: {
    out: { type: "string", value: "FILE.html", description: "where the page goes (default: DIR/report.html)" },
    json: { type: "boolean", description: "print the paths, figures, headline numbers and findings as JSON" },
  },
});

export async function runReportCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseOrHelp(reportCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const report = await writeReport(positionals[0]!, values.out);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ html: report.html, data: report.dataDir, figures: report.figures, headline: report.data.headline, findings: report.findings })}\n`,
    );
    return 0;
  }
  const pad = (s: string, n: number) => s.padEnd(n);
  const width = Math.max(10, ...report.data.headline.map((h) => h.condition.length + 2));
  process.stdout.write(`report: ${report.html}\n\n${pad("condition", width)}${pad("EM %", 8)}${pad("95% CI", 14)}coherent %\n`);
  for (const h of report.data.headline)
    process.stdout.write(
      `${pad(h.condition, width)}${pad(h.em_rate.toFixed(1), 8)}${pad(`${h.em_ci[0].toFixed(1)}-${h.em_ci[1].toFixed(1)}`, 14)}${h.coherent_rate.toFixed(1)}\n`,
    );
  process.stdout.write(`\n${report.findings.map((f) => `- ${f}`).join("\n")}\n`);
  return 0;
}
