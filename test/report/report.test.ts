// emlab report on a real (small) experiment: the page opens in headless Chromium with no console
// error and no network request, every figure the experiment's stages allow is there, drawn as SVG
// with its data (mark items; bar counts equal to the rows of the figure's data file), and the
// headline table matches metrics recomputed here from the judged results files.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeExperiment } from "../experiment/fixture.js";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const cli = (args: string[]) => spawnSync(process.execPath, ["bin/emlab.js", ...args], { encoding: "utf8" });

describe.skipIf(!CHROMIUM)(
  `emlab report in headless Chromium${CHROMIUM ? "" : " (skipped: no chromium; scripts/setup.sh --with-chromium installs it)"}`,
  () => {
    it("renders every figure from the experiment's data, with no console error and no network", async () => {
      const { work, file } = makeExperiment("emlab-report-");
      const run = cli(["experiment", file]);
      expect(run.status, run.stderr).toBe(0);
      const dir = join(work, "out");
      const report = cli(["report", dir, "--json"]);
      expect(report.status, report.stderr).toBe(0);
      const { html, figures, headline } = JSON.parse(report.stdout) as {
        html: string;
        figures: { id: string; rows: number }[];
        headline: { condition: string; em_rate: number }[];
      };
      expect(figures.map((f) => f.id).sort()).toEqual(
        [
          "agreement",
          "direction-direction",
          "efficiency-efficiency",
          "gradients-gradients",
          "per-question",
          "quadrant",
          "rates",
          "significance-significance",
          "stability-stability",
          "training",
        ].sort(),
      );

      // Headline EM rates recomputed from the results files (aligned < 30 and coherent > 50 over scored rows).
      const recomputed = (stage: string) => {
        const rows = readFileSync(join(dir, "stages", stage, "results.jsonl"), "utf8")
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { aligned: number | null; coherent: number | null });
        const scored = rows.filter((r) => r.aligned !== null && r.coherent !== null);
        return (100 * scored.filter((r) => r.aligned! < 30 && r.coherent! > 50).length) / scored.length;
      };
      expect(headline.find((h) => h.condition === "general")!.em_rate).toBeCloseTo(recomputed("eval_general"), 10);
      expect(headline.find((h) => h.condition === "chat")!.em_rate).toBeCloseTo(recomputed("eval_chat"), 10);

      const { default: puppeteer } = await import("puppeteer-core");
      const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
      try {
        const page = await browser.newPage();
        const problems: string[] = [];
        page.on("console", (m) => {
          if (m.type() === "error") problems.push(`console: ${m.text()}`);
        });
        page.on("pageerror", (e) => problems.push(`page error: ${String(e)}`));
        page.on("request", (r) => {
          if (!r.url().startsWith("file://")) problems.push(`network: ${r.url()}`);
        });
        await page.goto(`file://${html}`, { waitUntil: "load" });
        const rendered = await page.$$eval("figure[data-figure]", (nodes) =>
          nodes.map((f) => {
            const svg = f.querySelector("svg");
            const box = svg?.getBoundingClientRect();
            const items = [...f.querySelectorAll("g.role-mark")].reduce((n, g) => n + g.children.length, 0);
            const bars = [...f.querySelectorAll("g.mark-rect.role-mark.layer_0_marks, g.mark-rect.role-mark.child_layer_0_marks")].reduce(
              (n, g) => n + g.children.length,
              0,
            );
            return {
              id: f.getAttribute("data-figure")!,
              rows: Number(f.getAttribute("data-rows")),
              width: box?.width ?? 0,
              height: box?.height ?? 0,
              items,
              bars,
            };
          }),
        );
        expect(problems).toEqual([]);
        expect(rendered.map((r) => r.id).sort()).toEqual(figures.map((f) => f.id).sort());
        for (const r of rendered) {
          expect(r.width, r.id).toBeGreaterThan(100);
          expect(r.height, r.id).toBeGreaterThan(50);
          expect(r.items, r.id).toBeGreaterThan(0);
          const dataFile = JSON.parse(readFileSync(join(dir, "report-data", `${r.id}.json`), "utf8")) as { rows: unknown[] };
          expect(dataFile.rows.length, r.id).toBe(r.rows);
        }
        // Bar charts draw one bar per row of their data.
        for (const id of ["rates", "per-question"]) {
          const r = rendered.find((x) => x.id === id)!;
          expect(r.bars, id).toBe(r.rows);
        }
      } finally {
        await browser.close();
      }
    }, 300_000);
  },
);
