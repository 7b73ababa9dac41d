// What Plotly drew on an HTML report page, measured in headless Chromium (offline): SVG trace
// groups, paths and legend entries per figure, against what each figure's spec asks for. Used by
// test/browser.test.ts (every report page) and test/notebooks.test.ts (the sweep notebook's page).
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { findChromium, runChromium } from "../../src/viz/chromium_export";

/** Why the browser checks cannot run here (no Chromium), or false. */
export function chromiumMissing(): string | false {
  try {
    findChromium();
    return false;
  } catch (e) {
    return (e as Error).message;
  }
}

export interface Drawn {
  id: string;
  specTraces: number;
  specLegend: number;
  legendShown: boolean;
  traces: number;
  paths: number;
  legend: number;
  title: string;
}

/** Appended to a report page: after the plots ran, writes what each figure drew into a textarea. */
const MEASURE = `<script>
window.addEventListener("load", function () { setTimeout(function () {
  var out = [];
  document.querySelectorAll(".plotly-graph-div").forEach(function (gd) {
    var data = gd.data || [];
    out.push({
      id: gd.id,
      specTraces: data.length,
      specLegend: data.filter(function (t) { return t.showlegend !== false; }).length,
      legendShown: !!(gd._fullLayout && gd._fullLayout.showlegend),
      traces: gd.querySelectorAll(".cartesianlayer g.trace").length,
      paths: gd.querySelectorAll(".cartesianlayer g.trace path").length,
      legend: gd.querySelectorAll(".legend g.traces").length,
      title: (gd.querySelector(".gtitle") || {}).textContent || ""
    });
  });
  var box = document.createElement("textarea");
  box.id = "bias-init-drawn";
  box.textContent = JSON.stringify(out);
  document.body.appendChild(box);
}, 2000); });
</script>`;

/** Opens a copy of `html` with the measuring script in headless Chromium (no network) and returns what was drawn. */
export async function measure(html: string): Promise<Drawn[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-browser-"));
  try {
    const page = path.join(dir, "page.html");
    fs.writeFileSync(page, fs.readFileSync(html, "utf8").replace(/<\/body>/i, `${MEASURE}</body>`));
    const dom = await runChromium(`file://${page}`, ["--virtual-time-budget=30000", "--dump-dom"]);
    const m = /<textarea id="bias-init-drawn">([^<]*)<\/textarea>/.exec(dom);
    assert.ok(m, `${html}: the page never finished loading`);
    return JSON.parse(m[1].replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&")) as Drawn[];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function screenshot(html: string, png: string): Promise<void> {
  fs.mkdirSync(path.dirname(png), { recursive: true });
  await runChromium(`file://${html}`, ["--virtual-time-budget=30000", "--window-size=1280,2400", `--screenshot=${png}`]);
  assert.ok(fs.statSync(png).size > 10_000, `${png} is suspiciously small`);
}

export function checkDrawn(d: Drawn, where: string): void {
  assert.ok(d.specTraces > 0, `${where} ${d.id} "${d.title}": no traces in the figure`);
  assert.equal(d.traces, d.specTraces, `${where} ${d.id} "${d.title}": drew ${d.traces} of ${d.specTraces} traces`);
  assert.ok(d.paths >= d.traces, `${where} ${d.id} "${d.title}": ${d.paths} SVG paths for ${d.traces} traces`);
  assert.equal(d.legend, d.legendShown ? d.specLegend : 0, `${where} ${d.id} "${d.title}": legend entries`);
}

