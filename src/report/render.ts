/**
 * Renders Vega-Lite specifications to SVG strings in Node (vega-lite compiles to Vega, a headless
 * Vega view renders the scene to SVG), so the report page needs no script and no network.
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const compiled = compile({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: { font: "sans-serif", view: { stroke: "#ddd" } },
    ...spec,
  } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logLevel: vega.Warn });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
