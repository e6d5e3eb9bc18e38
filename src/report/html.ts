/**
 * `report.html` of an experiment directory: a self-contained page (styles inline, figures as inline
 * SVG rendered in Node, no script, no network) with the findings, a headline table, one figure per
 * available analysis and the stage table of the manifest; the plot data is written beside it
 * (`report-data/<figure>.json`) so every figure can be re-plotted elsewhere.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { collectReport, type ReportData } from "./collect.js";
import { findings } from "./findings.js";
import { renderSvg } from "./render.js";
import { specFor } from "./specs.js";

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const STYLE = `body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}figure{margin:1.5em 0;border-top:1px solid #eee;padding-top:.5em}
figcaption{color:#555;font-size:.9em;margin:.3em 0 .6em}table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
.findings li{margin:.4em 0}.muted{color:#777;font-size:.85em}`;

export interface WrittenReport {
  html: string;
  dataDir: string;
  figures: { id: string; rows: number }[];
  data: ReportData;
  findings: string[];
}

export async function writeReport(dir: string, out = join(dir, "report.html")): Promise<WrittenReport> {
  const data = collectReport(dir);
  const dataDir = join(dir, "report-data");
  mkdirSync(dataDir, { recursive: true });
  const sections: string[] = [];
  for (const figure of data.figures) {
    writeFileSync(
      join(dataDir, `${figure.id}.json`),
      `${JSON.stringify({ title: figure.title, rows: figure.rows, ...figure.extra }, null, 1)}\n`,
    );
    const svg = await renderSvg(specFor(figure));
    const stats = figure.extra?.stats as Record<string, unknown>[] | undefined;
    const statsTable = stats
      ? table(
          Object.keys(stats[0] ?? {}),
          stats.map((s) => Object.values(s).map((v) => (typeof v === "number" ? v.toFixed(3) : String(v)))),
        )
      : "";
    sections.push(
      `<figure data-figure="${escape(figure.id)}" data-rows="${figure.rows.length}"><h2>${escape(figure.title)}</h2><figcaption>${escape(figure.caption)} <span class="muted">Data: report-data/${escape(figure.id)}.json (${figure.rows.length} rows).</span></figcaption>${svg}${statsTable}</figure>`,
    );
  }
  const stated = findings(data);
  const questions = [...new Set(data.headline.flatMap((h) => Object.keys(h.per_question)))];
  const headline = data.headline.length
    ? table(
        ["condition", "EM %", "95% CI", "coherent %", "scored", ...questions.map((q) => `EM ${q}`)],
        data.headline.map((h) => [
          h.condition,
          h.em_rate.toFixed(1),
          `${h.em_ci[0].toFixed(1)}-${h.em_ci[1].toFixed(1)}`,
          h.coherent_rate.toFixed(1),
          String(h.scored),
          ...questions.map((q) => (h.per_question[q] ?? Number.NaN).toFixed(1)),
        ]),
      )
    : "<p>No metrics stage completed.</p>";
  const stages = table(
    ["stage", "kind", "status", "wall s", "attempts"],
    data.manifest.order.map((n) => {
      const s = data.manifest.stages[n];
      return [n, s?.kind ?? "", s?.status ?? "not run", s ? s.wall_s.toFixed(1) : "", s ? String(s.attempts) : ""];
    }),
  );
  const settings = data.manifest.report ?? {};
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(settings.title ?? "emlab report")}</title><style>${STYLE}</style></head><body>
<h1>${escape(settings.title ?? "emlab experiment report")}</h1>
<p class="muted">Experiment ${escape(data.manifest.experiment)} - model ${escape(data.manifest.model ?? "")} - directory ${escape(dir)}</p>
${settings.summary ? `<p>${escape(settings.summary)}</p>` : ""}
<h2>What this run shows</h2><ul class="findings">${stated.map((s) => `<li>${escape(s)}</li>`).join("")}</ul>
<h2>Headline numbers</h2>${headline}
${sections.join("\n")}
<h2>Stages</h2>${stages}
</body></html>\n`;
  writeFileSync(out, html);
  return { html: out, dataDir, figures: data.figures.map((f) => ({ id: f.id, rows: f.rows.length })), data, findings: stated };
}

function table(header: string[], rows: string[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${escape(h)}</th>`).join("")}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${escape(c)}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}
