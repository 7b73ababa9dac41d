// Figures as notebook outputs, drawn offline by plotly.js carried in the notebook itself.
//
// One output per figure carries BOTH `application/vnd.plotly.v1+json` (JupyterLab's plotly
// renderer; it also renders when a saved notebook is reopened untrusted, where script HTML comes up
// blank) AND `text/html` with a small `Plotly.newPlot` script (what nbconvert's HTML uses, with
// the project's template and nbconvert's default one alike).
//
// plotly.js itself (4.8 MB) goes into the setup cell's output, every time that cell runs
// (`showPlotlyLibrary`, called by notebookSetup): a saved notebook then carries exactly one copy,
// in the one output that is replaced whenever the setup cell is re-run, so no re-run can leave the
// figures of a saved file pointing at a library the file lacks. (Sent once per kernel session, as
// before, a re-run setup cell replaced the output holding the library with one that did not.)
// The library is guarded by `if (!window.Plotly)`; a figure script waits for it, so its place in
// the page does not matter.
import * as fs from "fs";
import { randomBytes } from "crypto";
import { UserError } from "../errors";
import { MimeBundle, showBundle } from "./kernel_output";
import { scriptJson } from "./html_output";
import { PlotlyFigure, checkFigure } from "./plotly_figure";

const PLOTLY_PACKAGES = ["plotly.js-dist-min/plotly.min.js", "plotly.js-dist/plotly.js"];

let plotlySource: { file: string; code: string } | null = null;

/** plotly.js as shipped by npm (the minified build when installed, else plotly.js-dist). */
function plotlyLibrary(): { file: string; code: string } {
  if (plotlySource) return plotlySource;
  for (const id of PLOTLY_PACKAGES) {
    let file: string;
    try {
      file = require.resolve(id);
    } catch {
      continue;
    }
    plotlySource = { file, code: fs.readFileSync(file, "utf8") };
    return plotlySource;
  }
  throw new UserError(`plotly.js: not found (looked for ${PLOTLY_PACKAGES.join(", ")}); run npm ci`);
}

/**
 * A <script> that defines window.Plotly unless the page already has it. `</script` cannot occur
 * inside a script element, so any such text in the library is escaped (none in 3.x, but cheap).
 */
export function plotlyLibraryScript(): string {
  const code = plotlyLibrary().code.replace(/<\/script/gi, "<\\/script");
  return `<script type="text/javascript">if (!window.Plotly) {\n${code}\n}</script>`;
}

let plotlyInlined = false;

/** Forgets that plotly.js was sent (tests; a fresh kernel starts this way). */
export function resetPlotlyInlined(): void {
  plotlyInlined = false;
}

/** Sends plotly.js as an output of its own (no visible content). notebookSetup calls it every time it runs. */
export function showPlotlyLibrary(): void {
  showBundle({ "text/html": plotlyLibraryScript(), "text/plain": "" });
  plotlyInlined = true;
}

/** Sends plotly.js unless this kernel session already did: a figure shown without notebookSetup still draws. */
export function ensurePlotlyLibrary(): void {
  if (!plotlyInlined) showPlotlyLibrary();
}

const DEFAULT_PLOT_CONFIG = { responsive: true, displaylogo: false };

/** Plain-text stand-in for a figure: its title and trace names. */
function figureText(fig: PlotlyFigure): string {
  const layout = (fig.layout ?? {}) as { title?: string | { text?: string } };
  const title = typeof layout.title === "string" ? layout.title : layout.title?.text ?? "";
  const names = fig.data.map((t) => (t as { name?: string }).name).filter((n): n is string => typeof n === "string" && n.length > 0);
  const unique = names.filter((n, i) => names.indexOf(n) === i);
  return `<Plotly figure${title ? `: ${title.replace(/<[^>]*>/g, "")}` : ""}; ${fig.data.length} trace(s)${unique.length ? ` (${unique.join(", ")})` : ""}>`;
}

/**
 * The HTML part of a figure: a div and a script that plots into it once window.Plotly exists.
 * The script waits a little if the library output has not run yet, then says why it is blank.
 */
function figureHtml(fig: PlotlyFigure, divId = `fig-${randomBytes(6).toString("hex")}`): string {
  const layout = (fig.layout ?? {}) as { height?: number };
  const height = typeof layout.height === "number" ? layout.height : 450;
  const config = { ...DEFAULT_PLOT_CONFIG, ...(fig.config ?? {}) };
  return `<div id="${divId}" class="plotly-graph-div" style="width:100%;height:${height}px"></div>\n` +
    `<script type="text/javascript">(function () {\n` +
    `  var fig = ${scriptJson({ data: fig.data, layout: fig.layout ?? {}, config: config })};\n` +
    `  var tries = 0;\n` +
    `  function draw() {\n` +
    `    var div = document.getElementById(${scriptJson(divId)});\n` +
    `    if (!div) return;\n` +
    `    if (window.Plotly) { window.Plotly.newPlot(div, fig.data, fig.layout, fig.config); return; }\n` +
    `    if (++tries < 50) { setTimeout(draw, 100); return; }\n` +
    `    div.style.height = "auto";\n` +
    `    div.textContent = "plotly.js is not in this page: run the notebook's first cell (notebookSetup) and save, or run all cells.";\n` +
    `  }\n` +
    `  draw();\n` +
    `})();</script>`;
}

/** The bundle of one figure: Plotly JSON for JupyterLab, HTML + script for nbconvert, a text line. */
export function figureBundle(fig: PlotlyFigure, divId?: string): MimeBundle {
  return {
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {}, config: { ...DEFAULT_PLOT_CONFIG, ...(fig.config ?? {}) } },
    "text/html": figureHtml(fig, divId),
    "text/plain": figureText(fig),
  };
}

export function showFigure(fig: PlotlyFigure): void {
  checkFigure(fig, "showFigure");
  ensurePlotlyLibrary();
  showBundle(figureBundle(fig));
}
