// What a Plotly figure is: the {data, layout, config} that `Plotly.newPlot` takes. The figure
// builders (figures.ts) return it; the notebook output (plotly_inline.ts) and the static export
// (chromium_export.ts) take it.

export interface PlotlyFigure {
  data: Array<Record<string, unknown>>;
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

/** Throws a TypeError naming `fn` when `fig` is not a {data: [...]} object (notebook code is untyped at run time). */
export function checkFigure(fig: PlotlyFigure, fn: string): void {
  if (fig === null || typeof fig !== "object" || !Array.isArray(fig.data)) {
    throw new TypeError(`${fn}: expected a Plotly figure {data: [...], layout: {...}}, got ${fig === null ? "null" : typeof fig}`);
  }
}
