// The HTML report in a real browser, offline: headless Chromium opens nbconvert's HTML and we count
// what Plotly actually drew (SVG trace groups, paths, legend entries), not merely that a div exists.
//
// 1. Always: a notebook whose outputs are made by src/viz/plotly_inline.ts and html_output.ts from
//    src/viz/figures.ts specs is converted with the report's own template (tools/jupyter/run_notebooks.py --no-execute);
//    every figure must draw exactly the traces and legend entries its spec asks for.
// 2. When `make report` has written reports/*.html: the same check on every figure there.
// Each page is also screenshotted (into a temporary folder) to check that Chromium paints it.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { DisplayMessage, setDisplaySink } from "../src/viz/kernel_output";
import { showTable } from "../src/viz/html_output";
import { resetPlotlyInlined, showFigure } from "../src/viz/plotly_inline";
import { checkDrawn, chromiumMissing, measure, screenshot } from "./helpers/report_browser";
import { learningCurves, pairedDifferenceFigure } from "../src/viz/figures";
import type { EpochRecord } from "../src/experiment/records";

const ROOT = path.resolve(__dirname, "..");
const REPORTS = path.join(ROOT, "reports");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");

const skipBrowser = chromiumMissing() || (fs.existsSync(PYTHON) ? false : `${PYTHON} is missing: run \`make setup\``);

/** Two trials per arm, epochs 0..2, synthetic. */
function records(): EpochRecord[] {
  const out: EpochRecord[] = [];
  for (const arm of ["vanilla", "positive_rate"] as const)
    for (let trial = 0; trial < 2; trial++)
      for (let epoch = 0; epoch <= 2; epoch++)
        out.push({
          backbone: "scratch", arm, trial, epoch, loss: (arm === "vanilla" ? 0.69 : 0.33) / (1 + epoch) + 0.01 * trial,
          roc_auc: 0.5 + 0.1 * epoch + 0.02 * trial, output_bias_value: arm === "vanilla" ? 0 : -2.2, train_loss: null,
          wall_s: 0, images_per_s: null, seed: 0, dataset: "synthetic", backend: "js",
        });
  return out;
}

/** An executed-looking notebook whose outputs are exactly what src/viz/ sends to the kernel. */
function writeNotebook(file: string): void {
  const messages: DisplayMessage[] = [];
  setDisplaySink((m) => messages.push(m));
  try {
    resetPlotlyInlined();
    const opts = { backbone: "scratch" as const, dataset: "synthetic" as const, positiveRate: 0.1 };
    showFigure(learningCurves(records(), opts));
    showFigure(pairedDifferenceFigure(records(), opts));
    showFigure({ data: [{ type: "bar", x: ["frog", "other"], y: [1, 9] }], layout: { title: { text: "bars" }, showlegend: false } });
    showTable({ columns: ["arm", "loss"], values: [["vanilla", 0.69], ["positive_rate", 0.33]] });
  } finally {
    setDisplaySink(null);
  }
  const outputs = messages.map((m) => ({ output_type: "display_data", data: m.data, metadata: m.metadata }));
  const nb = {
    cells: [
      { cell_type: "markdown", id: "md", metadata: {}, source: "# Browser check" },
      { cell_type: "code", id: "code", metadata: {}, execution_count: null, source: "nb.show(...)", outputs },
    ],
    metadata: { kernelspec: { name: "bias-init-tslab", display_name: "TypeScript (bias-init lab)", language: "typescript" } },
    nbformat: 4, nbformat_minor: 5,
  };
  fs.writeFileSync(file, JSON.stringify(nb));
}

describe("HTML report in headless Chromium, offline", { skip: skipBrowser }, () => {
  test("figures from src/viz/, through the report template, draw every trace and legend entry", async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-report-"));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const nbFile = path.join(dir, "browser_check.ipynb");
    writeNotebook(nbFile);
    const r = spawnSync(PYTHON, [path.join(ROOT, "tools/jupyter/run_notebooks.py"), "--no-execute", "--out", dir, nbFile], { cwd: ROOT, encoding: "utf8" });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const html = path.join(dir, "browser_check.html");
    const text = fs.readFileSync(html, "utf8");
    assert.doesNotMatch(text, /<script[^>]+src=/i, "the report loads no external script");
    const drawn = await measure(html);
    // learningCurves: 2 arms x 2 panels x (band + line), legend = one line per arm;
    // paired difference: 2 panels x (band + line), one legend entry; the bar chart: 1 trace, no legend.
    assert.deepEqual(drawn.map((d) => [d.traces, d.legend]), [[8, 2], [4, 1], [1, 0]]);
    for (const d of drawn) checkDrawn(d, "browser_check.html");
    assert.match(drawn[0].title, /From scratch, 2 trials \(synthetic data\)/);
    await screenshot(html, path.join(dir, "browser-check.png"));
  });

  const reports = fs.existsSync(REPORTS) ? fs.readdirSync(REPORTS).filter((f) => /^\d\d_.*\.html$/.test(f)).sort() : [];
  test("every figure of the `make report` HTML rendered", { skip: reports.length === 0 ? "no reports/NN_*.html yet: run `make report` first" : false }, async (t) => {
    const shots = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-screenshots-"));
    t.after(() => fs.rmSync(shots, { recursive: true, force: true }));
    let figures = 0;
    for (const file of reports) {
      const html = path.join(REPORTS, file);
      // Every figure output carries one plotting script; a page may legitimately have none (e.g.
      // 01 when the ImageNet weights are unavailable).
      const expected = fs.readFileSync(html, "utf8").split("window.Plotly.newPlot(div, fig.data").length - 1;
      const drawn = await measure(html);
      assert.equal(drawn.length, expected, `${file}: ${drawn.length} Plotly figures on the page, ${expected} figure outputs`);
      for (const d of drawn) checkDrawn(d, file);
      figures += drawn.length;
      await screenshot(html, path.join(shots, file.replace(/\.html$/, ".png")));
    }
    assert.ok(figures > 0, `no Plotly figure in any of ${reports.join(", ")}`);
  });
});
