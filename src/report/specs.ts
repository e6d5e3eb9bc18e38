/**
 * Vega-Lite specifications of the report's figures, one per figure kind, each over the rows that
 * collect.ts gathered (inline data). Declarative only: rendering is in render.ts.
 */
import type { FigureData } from "./collect.js";

type Spec = Record<string, unknown>;
const WIDTH = 520;

export function specFor(figure: FigureData): Spec {
  const data = { values: figure.rows };
  const kind = figure.id.split("-")[0];
  switch (kind) {
    case "training":
      return {
        data,
        facet: { row: { field: "metric", type: "nominal", title: null } },
        spec: {
          width: WIDTH,
          height: 90,
          mark: { type: "line", point: false },
          encoding: {
            x: { field: "step", type: "quantitative" },
            y: { field: "value", type: "quantitative", title: null, scale: { zero: false } },
            color: { field: "run", type: "nominal" },
          },
        },
        resolve: { scale: { y: "independent" } },
      };
    case "rates":
      return {
        data,
        facet: { column: { field: "measure", type: "nominal", title: null } },
        spec: {
          width: 240,
          height: 200,
          layer: [
            {
              mark: "bar",
              encoding: {
                x: { field: "condition", type: "nominal", title: null, sort: null, axis: { labelLimit: 240 } },
                y: { field: "rate", type: "quantitative", title: "%", scale: { domain: [0, 100] } },
                color: { field: "condition", type: "nominal", legend: null },
              },
            },
            {
              mark: { type: "rule", color: "black" },
              encoding: {
                x: { field: "condition", type: "nominal", sort: null },
                y: { field: "lo", type: "quantitative" },
                y2: { field: "hi" },
              },
            },
          ],
        },
      };
    case "per":
      return {
        data,
        width: WIDTH,
        height: 220,
        layer: [
          {
            mark: "bar",
            encoding: {
              x: { field: "question", type: "nominal" },
              xOffset: { field: "condition", sort: null },
              y: { field: "rate", type: "quantitative", title: "EM %", scale: { domain: [0, 100] } },
              color: { field: "condition", type: "nominal", sort: null },
            },
          },
          {
            mark: { type: "rule", color: "black" },
            encoding: {
              x: { field: "question", type: "nominal" },
              xOffset: { field: "condition", sort: null },
              y: { field: "lo", type: "quantitative" },
              y2: { field: "hi" },
            },
          },
        ],
      };
    case "quadrant":
      return {
        data,
        facet: { field: "condition", type: "nominal", title: null, sort: null },
        columns: 4,
        spec: {
          width: 150,
          height: 150,
          layer: [
            {
              mark: { type: "circle", opacity: 0.6 },
              encoding: {
                x: { field: "aligned", type: "quantitative", scale: { domain: [0, 100] } },
                y: { field: "coherent", type: "quantitative", scale: { domain: [0, 100] } },
                size: { aggregate: "count", type: "quantitative", title: "answers" },
                color: { field: "condition", type: "nominal", legend: null },
              },
            },
            { mark: { type: "rule", strokeDash: [4, 3], color: "#c33" }, encoding: { x: { datum: 30 } } },
            { mark: { type: "rule", strokeDash: [4, 3], color: "#c33" }, encoding: { y: { datum: 50 } } },
          ],
        },
      };
    case "agreement":
      return {
        data,
        width: 260,
        height: 260,
        mark: { type: "circle", opacity: 0.6 },
        encoding: {
          x: { field: "a", type: "quantitative", title: "aligned (judge a)" },
          y: { field: "b", type: "quantitative", title: "aligned (judge b)" },
          size: { aggregate: "count", type: "quantitative", title: "answers" },
          color: { field: "pair", type: "nominal" },
        },
      };
    case "efficiency":
      return {
        data,
        hconcat: [
          {
            width: 300,
            height: 200,
            transform: [{ filter: "datum.series === 'loss'" }],
            mark: { type: "line", point: true },
            encoding: {
              x: { field: "norm", type: "quantitative", title: "parameter norm" },
              y: { field: "loss", type: "quantitative", scale: { zero: false } },
              color: { field: "solution", type: "nominal" },
            },
          },
          {
            width: 220,
            height: 200,
            transform: [{ filter: "datum.series === 'difference'" }],
            layer: [
              {
                mark: { type: "line", point: true, color: "#555" },
                encoding: {
                  x: { field: "norm", type: "quantitative", title: "parameter norm" },
                  y: { field: "loss", type: "quantitative", title: "loss(narrow) - loss(general)" },
                },
              },
              { mark: { type: "rule", color: "#999" }, encoding: { y: { datum: 0 } } },
            ],
          },
        ],
      };
    case "stability":
      return {
        data,
        width: WIDTH,
        height: 220,
        layer: [
          {
            mark: { type: "area", opacity: 0.25 },
            encoding: {
              x: { field: "eps", type: "quantitative", title: "epsilon" },
              y: { field: "lo", type: "quantitative", title: "relative loss increase %" },
              y2: { field: "hi" },
              color: { field: "solution", type: "nominal" },
            },
          },
          {
            mark: { type: "line", point: true },
            encoding: {
              x: { field: "eps", type: "quantitative" },
              y: { field: "mean", type: "quantitative" },
              color: { field: "solution", type: "nominal" },
            },
          },
        ],
      };
    case "significance":
      return {
        data,
        width: WIDTH,
        height: 220,
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "norm", type: "quantitative" },
          y: { field: "kl", type: "quantitative", title: "KL(chat || steered)" },
          color: { field: "vector", type: "nominal" },
          strokeDash: {
            field: "random",
            type: "nominal",
            title: null,
            scale: {
              domain: ["trained", "random control"],
              range: [
                [1, 0],
                [4, 3],
              ],
            },
          },
        },
      };
    case "direction":
      return {
        data,
        facet: { column: { field: "against", type: "nominal", title: "cosine with" } },
        spec: {
          width: 200,
          height: 200,
          mark: "rect",
          encoding: {
            x: { field: "other_layer", type: "ordinal", title: "layer" },
            y: { field: "layer", type: "ordinal" },
            color: { field: "cosine", type: "quantitative", scale: { domain: [-1, 1], scheme: "redblue", reverse: true } },
          },
        },
      };
    case "gradients":
      return {
        data,
        hconcat: [
          {
            width: 260,
            height: 220,
            mark: { type: "line", point: true },
            encoding: {
              x: { field: "pc1", type: "quantitative", title: "PC1" },
              y: { field: "pc2", type: "quantitative", title: "PC2" },
              order: { field: "step", type: "quantitative" },
              color: { field: "run", type: "nominal" },
            },
          },
          {
            width: 240,
            height: 220,
            transform: [{ filter: "datum.cosine !== null" }],
            mark: { type: "line", point: true },
            encoding: {
              x: { field: "step", type: "quantitative" },
              y: { field: "cosine", type: "quantitative", title: "cos(gradient, direction)" },
              color: { field: "run", type: "nominal" },
            },
          },
        ],
      };
    default:
      throw new RangeError(`no figure spec for ${figure.id}`);
  }
}
