// The notebook layer: output bundles (figures, tables, live progress, images), the conclusions
// written from numbers, and the real notebooks executed through the project's tslab kernel.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { inflateSync } from "zlib";
import { DisplayMessage, setDisplaySink } from "../src/viz/kernel_output";
import { LiveProgress, StepStatus, scriptJson, tableBundle } from "../src/viz/html_output";
import { figureBundle, resetPlotlyInlined, showFigure, showPlotlyLibrary } from "../src/viz/plotly_inline";
import { rgbToPng } from "../src/viz/png";
import { conclusionParts, partFindings, verdict, writeConclusions } from "../src/experiment/conclusions";
import { formatInterval } from "../src/experiment/stats/student_t";
import type { EpochRecord } from "../src/experiment/records";
import { makeConfig, mergeOverrides } from "../src/config";
import { loadResults, storeFor } from "../src/experiment/grid";
import { asSentence, planStatusText } from "../src/experiment/run_summary";
import { planOverrides, planRates } from "../src/experiment/plans";
import { rateConfigs } from "../src/experiment/sweep";
import { entropyNats } from "../src/maths";
import { checkDrawn, chromiumMissing, measure } from "./helpers/report_browser";


const ROOT = path.resolve(__dirname, "..");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const noPython = fs.existsSync(PYTHON) ? false : `${PYTHON} is missing: run \`make setup\``;
// tslab's own version strings: the TypeScript it compiles notebooks with is what the kernel reports.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const tslabVersions = (require("tslab/dist/public") as { versions: { typescript: string } }).versions;

function capture(fn: () => void): Array<{ message: DisplayMessage; update: boolean }> {
  const sent: Array<{ message: DisplayMessage; update: boolean }> = [];
  setDisplaySink((message, update) => sent.push({ message, update }));
  try {
    fn();
  } finally {
    setDisplaySink(null);
  }
  return sent;
}

describe("display bundles", () => {
  const fig = { data: [{ type: "scatter", name: "Vanilla </script><b>", x: [0, 1], y: [0.7, 0.4] }], layout: { title: { text: "t" }, height: 300 } };

  test("a figure is one output with the Plotly JSON, the HTML+script and a text line", () => {
    const bundle = figureBundle(fig, "fig-test");
    assert.deepEqual(Object.keys(bundle).sort(), ["application/vnd.plotly.v1+json", "text/html", "text/plain"]);
    assert.deepEqual(bundle["application/vnd.plotly.v1+json"], { data: fig.data, layout: fig.layout, config: { responsive: true, displaylogo: false } });
    const html = bundle["text/html"] as string;
    assert.match(html, /<div id="fig-test" class="plotly-graph-div" style="width:100%;height:300px"><\/div>/);
    assert.match(html, /window\.Plotly\.newPlot\(div, fig\.data, fig\.layout, fig\.config\)/);
    // The trace name's "</script>" must not end the script element early: only the real closing tag remains.
    assert.equal(html.split("</script>").length - 1, 1);
    assert.equal(bundle["text/plain"], "<Plotly figure: t; 1 trace(s) (Vanilla </script><b>)>");
  });

  test("scriptJson escapes what would end a script element or break a JS string", () => {
    assert.equal(scriptJson({ a: "</script>\u2028" }), '{"a":"\\u003c/script>\\u2028"}');
  });

  test("plotly.js is sent once per session, before the first figure", () => {
    resetPlotlyInlined();
    const sent = capture(() => {
      showFigure(fig);
      showFigure(fig);
    });
    assert.equal(sent.length, 3);
    const library = sent[0].message.data["text/html"] as string;
    assert.ok(library.startsWith('<script type="text/javascript">if (!window.Plotly) {'), library.slice(0, 80));
    assert.ok(library.length > 1_000_000, `plotly.js inlined (${library.length} chars)`);
    assert.ok("application/vnd.plotly.v1+json" in sent[1].message.data && "application/vnd.plotly.v1+json" in sent[2].message.data);
    assert.ok(sent.every((s) => !s.update && s.message.transient.display_id === undefined));
  });

  test("the setup cell carries plotly.js every time it runs, so a re-run setup cell keeps a saved notebook drawable", () => {
    resetPlotlyInlined();
    const sent = capture(() => {
      showPlotlyLibrary(); // notebookSetup, first run
      showFigure(fig);
      showPlotlyLibrary(); // the setup cell run again in the same kernel: its new output holds the library again
      showFigure(fig);
    });
    const isLibrary = (m: DisplayMessage): boolean => String(m.data["text/html"]).startsWith('<script type="text/javascript">if (!window.Plotly) {');
    assert.deepEqual(sent.map((s) => isLibrary(s.message)), [true, false, true, false]);
  });

  test("the setup status line: each step announced before it runs, then its time, one output updated in place", async () => {
    let now = 0;
    const sent: Array<{ message: DisplayMessage; update: boolean }> = [];
    setDisplaySink((message, update) => sent.push({ message, update }));
    try {
      const status = new StepStatus("setup", () => now);
      const seenDuringWork: string[] = [];
      const engine = await status.step("loading engine", async () => {
        seenDuringWork.push(String(sent[sent.length - 1].message.data["text/plain"]));
        now += 1200;
        return "native";
      });
      assert.equal(engine, "native");
      await status.step("generating the synthetic stand-in (12,000 images)", () => {
        seenDuringWork.push(String(sent[sent.length - 1].message.data["text/plain"]));
        now += 6100;
      });
      status.finish();
      assert.deepEqual(seenDuringWork, ["setup: loading engine...", "setup: loading engine: 1.2 s; generating the synthetic stand-in (12,000 images)..."]);
      await assert.rejects(new StepStatus("setup", () => now).step("loading engine", () => { now += 500; throw new Error("no engine"); }), /no engine/);
    } finally {
      setDisplaySink(null);
    }
    assert.deepEqual(sent.map((s) => s.message.data["text/plain"]), [
      "setup: loading engine...",
      "setup: loading engine: 1.2 s; generating the synthetic stand-in (12,000 images)...",
      "setup done in 7.3 s (loading engine: 1.2 s; generating the synthetic stand-in (12,000 images): 6.1 s)",
      "setup: loading engine...",
      "setup: loading engine: FAILED after 0.5 s",
    ]);
    assert.deepEqual(sent.map((s) => s.update), [false, true, true, false, true]);
    assert.equal(new Set(sent.slice(0, 3).map((s) => s.message.transient.display_id)).size, 1);
  });

  test("a table: right-aligned numbers with fixed digits, nulls empty, one-column frames", () => {
    const bundle = tableBundle({ columns: ["a", "b"], values: [[1, 0.5], [2, null]] }, { digits: 2, caption: "cap" });
    assert.equal(bundle["text/plain"], "cap\na     b\n1  0.50\n2");
    assert.match(bundle["text/html"] as string, /<td style="text-align:right;padding:2px 8px">0\.50<\/td>/);
    assert.match(bundle["text/html"] as string, /<caption[^>]*>cap<\/caption>/);
    assert.equal(tableBundle({ columns: ["x"], values: [3, 4] })["text/plain"], "x\n3\n4");
    assert.equal(tableBundle({ columns: ["s"], values: [["<b>"]] })["text/html"], '<div style="overflow-x:auto"><table class="dataframe" style="border-collapse:collapse;font-variant-numeric:tabular-nums"><thead><tr><th style="text-align:left;padding:2px 8px">s</th></tr></thead><tbody><tr><td style="text-align:left;padding:2px 8px">&lt;b&gt;</td></tr></tbody></table></div>');
  });

  test("live progress: one display id, updated in place, line updates throttled, rows always sent", () => {
    let now = 0;
    const sent = capture(() => {
      const p = new LiveProgress("header", 500, () => now);
      p.setLine("step 1");
      now = 100;
      p.setLine("step 2"); // within 500 ms: held back
      now = 200;
      p.addRow("row 1");
      now = 900;
      p.setLine("step 3");
      p.finish("done");
    });
    assert.deepEqual(sent.map((s) => s.update), [false, true, true, true]);
    assert.equal(new Set(sent.map((s) => s.message.transient.display_id)).size, 1);
    assert.deepEqual(sent.map((s) => s.message.data["text/plain"]), [
      "step 1", "step 2\n\nheader\nrow 1", "step 3\n\nheader\nrow 1", "done\n\nheader\nrow 1",
    ]);
  });

  test("rgbToPng writes a valid PNG (checked byte by byte for one red pixel)", () => {
    const png = rgbToPng(Uint8Array.from([255, 0, 0]), 1, 1);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.toString("ascii", 12, 16), "IHDR");
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]], [1, 1, 8, 2]);
    const idatLength = png.readUInt32BE(33);
    assert.equal(png.toString("ascii", 37, 41), "IDAT");
    assert.deepEqual([...inflateSync(png.subarray(41, 41 + idatLength))], [0, 255, 0, 0]);
    // IEND's CRC is the same in every PNG: AE 42 60 82.
    assert.deepEqual([...png.subarray(png.length - 12)], [0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
    assert.throws(() => rgbToPng(new Uint8Array(5), 1, 1), /5 bytes is not 1x1x3/);
  });
});

describe("conclusions from numbers", () => {
  // Three paired trials, epochs 0 and 1. Epoch 1: positive rate - vanilla BCE = -0.05, -0.06, -0.055
  // (mean -0.055, sd 0.005, t(0.975, 2) = 4.3027: CI -0.0674..-0.0426); ROC-AUC +0.01, +0.02, +0.015.
  function records(): EpochRecord[] {
    const out: EpochRecord[] = [];
    const bce1 = { vanilla: [0.40, 0.42, 0.41], positive_rate: [0.35, 0.36, 0.355] };
    const auc1 = { vanilla: [0.60, 0.61, 0.62], positive_rate: [0.61, 0.63, 0.635] };
    for (const arm of ["vanilla", "positive_rate"] as const) {
      for (let trial = 0; trial < 3; trial++) {
        for (const epoch of [0, 1]) {
          out.push({
            backbone: "scratch", arm, trial, epoch,
            loss: epoch === 0 ? (arm === "vanilla" ? 0.7 : 0.33) : bce1[arm][trial],
            roc_auc: epoch === 0 ? 0.5 : auc1[arm][trial],
            output_bias_value: 0, train_loss: null, wall_s: 0, images_per_s: null, seed: 0, dataset: "synthetic", backend: "js",
          });
        }
      }
    }
    return out;
  }

  test("verdicts follow the interval", () => {
    assert.equal(verdict({ n: 3, mean: -1, sd: 1, ci_low: -2, ci_high: -0.1 }), "lower");
    assert.equal(verdict({ n: 3, mean: 1, sd: 1, ci_low: 0.1, ci_high: 2 }), "higher");
    assert.equal(verdict({ n: 3, mean: 0, sd: 1, ci_low: -1, ci_high: 1 }), "unresolved");
    assert.equal(verdict({ n: 1, mean: 0.3, sd: null, ci_low: null, ci_high: null }), "single-trial");
    assert.equal(formatInterval({ n: 1, mean: 0.3, sd: null, ci_low: null, ci_high: null }, { signed: true }), "+0.3000 (one trial, no CI)");
  });

  test("findings state the paired differences and their intervals", () => {
    const findings = partFindings({ label: "Scratch", backbone: "scratch", records: records() }, 0.1);
    assert.deepEqual(findings, [
      "**Scratch, before training (epoch 0):** test BCE 0.7000 with the vanilla bias (log 2 = 0.6931) and 0.3300 with the positive-rate bias (H(p) = 0.3251 for p = 0.1000).",
      "**Scratch, after epoch 1:** lower test BCE with the positive-rate bias: positive rate - vanilla = -0.0550 (95% CI -0.0674 to -0.0426, 3 paired trials); " +
        "higher ROC-AUC with the positive-rate bias: +0.0150 (95% CI +0.0026 to +0.0274, 3 paired trials).",
      "**Scratch:** its test BCE is resolvably lower at every epoch (1-1) (paired t tests, Holm-corrected over the 1 epoch after training began, family-wise 5%).",
    ]);
  });

  test("claims about several epochs are Holm-corrected", () => {
    // Epochs 1-3 each with paired differences -0.03, -0.05, -0.07: t = 4.33 on 2 df, p = 0.0494 each.
    // Each alone excludes zero (so epoch 3's interval is a claim); over three epochs Holm needs p <= 0.0167.
    const out: EpochRecord[] = [];
    for (const arm of ["vanilla", "positive_rate"] as const) {
      for (let trial = 0; trial < 3; trial++) {
        for (let epoch = 0; epoch <= 3; epoch++) {
          const loss = epoch === 0 ? 0.5 : 0.4 - (arm === "positive_rate" ? [0.03, 0.05, 0.07][trial] : 0);
          out.push({ backbone: "scratch", arm, trial, epoch, loss, roc_auc: 0.6, output_bias_value: 0, train_loss: null, wall_s: 0, images_per_s: null, seed: 0, dataset: "synthetic", backend: "js" });
        }
      }
    }
    const findings = partFindings({ label: "Scratch", backbone: "scratch", records: out }, 0.1);
    assert.match(findings[1], /after epoch 3:\*\* lower test BCE with the positive-rate bias: positive rate - vanilla = -0\.0500 \(95% CI -0\.0997 to -0\.0003, 3 paired trials\)/);
    assert.equal(findings[2], "**Scratch:** at no epoch after training began is the positive-rate arm's test BCE resolvably lower (paired t tests, Holm-corrected over the 3 epochs after training began, family-wise 5%).");
  });

  test("the text names synthetic data loudly and reports halves that did not run", () => {
    const text = writeConclusions([
      { label: "ImageNet weights", backbone: "imagenet", records: [], unavailable: "weights/efficientnet_b1.pth not found" },
      { label: "Scratch", backbone: "scratch", records: records() },
    ], { dataset: "synthetic", positiveRate: 0.1, positiveClass: "frog", preset: "smoke", setting: "tiny" });
    assert.match(text, /^\*\*These numbers come from the SYNTHETIC stand-in data, not CIFAR-10\.\*\*/);
    assert.match(text, /- \*\*ImageNet weights: not run\.\*\* weights\/efficientnet_b1\.pth not found/);
    assert.match(text, /Preset `smoke`: tiny\./);
    const real = writeConclusions([], { dataset: "cifar10", positiveRate: 0.1, positiveClass: "cat", preset: "full", setting: "B1" });
    assert.match(real, /^Data: CIFAR-10, cat vs not cat, measured training positive rate p = 0\.1000\./, "the configured class, not a hard-coded frog");
    assert.match(real, /Holm-corrected/);
  });
});

describe("what 04 says about a plan", () => {
  test("smoke with an empty store: the ImageNet half cannot run (the tiny model has no ImageNet weights), and says so", (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-plan-status-"));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const imagenet = loadResults(makeConfig("smoke", planOverrides("imagenet", "smoke")), dir);
    assert.equal(planStatusText("imagenet", imagenet),
      `**imagenet** (\`${imagenet.dir}\`): 0 of 4 unit(s) complete; 4 cannot run: no ImageNet weights exist for model "tiny" of preset \`smoke\` (presets \`full\` and \`quick\` have them).`);
    // The figures and the conclusions say the same instead of "no results yet (run its notebook first)".
    const [part] = conclusionParts({ imagenet: imagenet });
    assert.equal(partFindings(part, 0.1)[0], "**ImageNet weights (2 epochs): not run.** No ImageNet weights exist for model \"tiny\" of preset `smoke` (presets `full` and `quick` have them)");
    const scratch = loadResults(makeConfig("smoke", planOverrides("scratch", "smoke")), dir);
    assert.equal(planStatusText("scratch", scratch), `**scratch** (\`${scratch.dir}\`): 0 of 4 unit(s) complete; run \`02_from_scratch\` to train the other 4.`);
    // With b1 (quick), the ImageNet half is trainable: the notebook that trains it is named.
    const quick = loadResults(makeConfig("quick", planOverrides("imagenet", "quick")), dir);
    assert.match(planStatusText("imagenet", quick), /: 0 of \d+ unit\(s\) complete; run `01_imagenet_weights` to train the other \d+\.$/);
  });

  test("a reason shown after a full stop starts with a capital, unless it starts with a name", () => {
    assert.equal(asSentence("no ImageNet weights exist for efficientnet \"tiny\""), "No ImageNet weights exist for efficientnet \"tiny\"");
    assert.equal(asSentence("weights/efficientnet_b1.pth not found"), "weights/efficientnet_b1.pth not found");
    assert.equal(asSentence("tslab: not installed"), "tslab: not installed");
    assert.equal(asSentence("Already capital"), "Already capital");
    assert.equal(asSentence(""), "");
  });
});

// ---------------------------------------------------------------------------------------------
// The committed notebooks: nbformat 4, the project's kernel, no outputs (reports/ has executed copies).

test("committed notebooks use the project's kernel and carry no outputs", () => {
  const dir = path.join(ROOT, "notebooks");
  const names = fs.readdirSync(dir).filter((f) => f.endsWith(".ipynb")).sort();
  assert.deepEqual(names, ["00_walkthrough.ipynb", "01_imagenet_weights.ipynb", "02_from_scratch.ipynb", "03_convergence.ipynb", "04_summary.ipynb", "05_imbalance_sweep.ipynb"]);
  for (const name of names) {
    const nb = JSON.parse(fs.readFileSync(path.join(dir, name), "utf8")) as {
      nbformat: number; nbformat_minor: number; metadata: { kernelspec?: { name?: string } };
      cells: Array<{ cell_type: string; id?: string; outputs?: unknown[]; execution_count?: number | null; source: string | string[] }>;
    };
    assert.equal(nb.nbformat, 4, name);
    assert.ok(nb.nbformat_minor >= 5, `${name}: nbformat 4.5+ (cell ids)`);
    assert.equal(nb.metadata.kernelspec?.name, "bias-init-tslab", `${name}: kernelspec`);
    const ids = nb.cells.map((c) => c.id);
    assert.equal(new Set(ids).size, ids.length, `${name}: cell ids must be unique`);
    for (const [i, cell] of nb.cells.entries()) {
      if (cell.cell_type !== "code") continue;
      assert.deepEqual(cell.outputs, [], `${name} cell ${i}: outputs must be cleared before committing (Edit > Clear Outputs of All Cells)`);
      assert.equal(cell.execution_count, null, `${name} cell ${i}: execution_count`);
    }
    const first = nb.cells.find((c) => c.cell_type === "code");
    assert.match(joined(first?.source), /const nb = await notebookSetup\(/, `${name}: the first code cell calls notebookSetup()`);
    // What the project's kernel reports (tools/jupyter/kernels/bias-init-tslab/start_tslab.js), so that saving does not rewrite it.
    assert.deepEqual((nb.metadata as Record<string, unknown>).language_info,
      { name: "typescript", file_extension: ".ts", mimetype: "text/typescript", version: tslabVersions.typescript }, `${name}: language_info`);
  }
});

test("committed notebooks are in the form `make strip` writes (what a saved, stripped notebook becomes byte for byte)", { skip: noPython }, () => {
  const r = spawnSync(PYTHON, [path.join(ROOT, "tools/jupyter/strip_notebooks.py"), "--check"], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

// ---------------------------------------------------------------------------------------------
// tslab compiles what notebooks import with its own TypeScript 5.0.4 and its own options (not
// strict, lib es2022, ...), which can reject code that `tsc -p .` accepts. Same compiler, no kernel.

interface TslabDiagnostic {
  fileName?: string;
  start: { line: number; character: number };
  messageText: string;
}
interface TslabConverter {
  convert(prevDecl: string, src: string): { diagnostics: TslabDiagnostic[] };
  close(): void;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

test("every src/ module compiles under tslab's compiler, as notebooks import it", () => {
  const cwd = process.cwd();
  process.chdir(ROOT); // tslab compiles relative to the working directory, like the kernel started by launch.sh
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { createConverter } = require("tslab/dist/converter") as { createConverter: () => TslabConverter };
  const converter = createConverter();
  try {
    const imports = sourceFiles(path.join(ROOT, "src")).map((f) => `import "./${path.relative(ROOT, f).replace(/\\/g, "/").replace(/\.ts$/, "")}";`);
    const { diagnostics } = converter.convert("", imports.join("\n"));
    const described = diagnostics.map((d) => `${d.fileName ?? "(a file imported by the cell)"} ${d.start.line + 1}:${d.start.character + 1} ${d.messageText}`);
    assert.deepEqual(described, [], "tslab rejects code that notebooks import (tsc -p . may accept it: tslab is not strict)");
  } finally {
    converter.close();
    process.chdir(cwd);
  }
});

// ---------------------------------------------------------------------------------------------
// The notebooks themselves, through the real tslab kernel (tools/jupyter/run_notebooks.py).

const JUPYTER = path.join(ROOT, ".venv", "bin", "jupyter");
const noJupyter = fs.existsSync(JUPYTER) ? false : `${JUPYTER} is missing: run \`make setup\` to execute the notebooks`;

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
}
const joined = (s: string | string[] | undefined): string => (Array.isArray(s) ? s.join("") : s ?? "");

function outputsOf(file: string): Output[] {
  const nb = JSON.parse(fs.readFileSync(file, "utf8")) as { cells: Cell[] };
  return nb.cells.flatMap((c) => c.outputs ?? []);
}

function outputText(o: Output): string {
  return o.output_type === "stream" ? joined(o.text) : joined(o.data?.["text/plain"] as string | string[] | undefined) + joined(o.data?.["text/html"] as string | string[] | undefined);
}

/** Checks every notebook-wide promise: no error, no stderr, no TF.js banner, plotly.js inlined once, header says the data. */
function checkCommon(file: string): Output[] {
  const outputs = outputsOf(file);
  const name = path.basename(file);
  assert.deepEqual(outputs.filter((o) => o.output_type === "error"), [], `${name}: error outputs`);
  assert.deepEqual(outputs.filter((o) => o.output_type === "stream" && o.name === "stderr").map(outputText), [], `${name}: stderr output`);
  for (const o of outputs) assert.doesNotMatch(outputText(o).slice(0, 100_000), /Hi, looks like you are running TensorFlow\.js|tfjs-node for more details/, `${name}: TF.js banner in an output`);
  const libraries = outputs.filter((o) => joined(o.data?.["text/html"] as string | undefined).includes("if (!window.Plotly) {"));
  assert.equal(libraries.length, 1, `${name}: plotly.js inlined once`);
  const header = outputs.find((o) => o.metadata?.bias_init !== undefined);
  assert.ok(header, `${name}: header output with dataset metadata`);
  const info = header.metadata?.bias_init as { dataset: string; preset: string };
  assert.equal(info.preset, "smoke");
  assert.ok(info.dataset === "synthetic" || info.dataset === "cifar10");
  if (info.dataset === "synthetic") assert.match(outputText(header), /DATA: SYNTHETIC stand-in, NOT CIFAR-10/);
  return outputs;
}

/** Figure outputs: the Plotly JSON and the HTML+script in one bundle. */
const figuresOf = (outputs: Output[]): Output[] =>
  outputs.filter((o) => o.data?.["application/vnd.plotly.v1+json"] !== undefined && o.data?.["text/html"] !== undefined);

describe("notebooks through the tslab kernel (BIAS_INIT_PRESET=smoke)", { skip: noJupyter }, () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "bias-init-notebooks-"));
  const results = path.join(work, "results");
  const reports = path.join(work, "reports");
  const data = path.join(work, "data");
  const out = path.join(work, "executed");
  // The failing cell, its stderr and error are in the assertion message; nothing else is kept.
  after(() => fs.rmSync(work, { recursive: true, force: true }));
  const env = { ...process.env, BIAS_INIT_PRESET: "smoke", BIAS_INIT_RESULTS: results, BIAS_INIT_REPORTS: reports, BIAS_INIT_DATA: data, BIAS_INIT_BACKEND: process.env.BIAS_INIT_BACKEND ?? "js" };

  function execute(...notebooks: string[]): void {
    const r = spawnSync(PYTHON, [path.join(ROOT, "tools/jupyter/run_notebooks.py"), "--no-html", "--out", out, ...notebooks.map((n) => path.join(ROOT, "notebooks", n))],
      { cwd: ROOT, env, encoding: "utf8", timeout: 240_000 });
    assert.equal(r.status, 0, `run_notebooks.py failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
  }

  type KernelReply = { language_info: unknown; history: unknown; outputs: Array<{ type: string; content: { name?: string; text?: string } }>; starts: number; busy_port?: number };
  /** test/helpers/kernel_protocol.py: the kernel started as Jupyter starts it; its stderr (the server log) is in LOG. */
  function kernelProtocol(log: string, code: string, flags: string[] = [], extraEnv: Record<string, string> = {}): KernelReply {
    const r = spawnSync(PYTHON, [path.join(ROOT, "test/helpers/kernel_protocol.py"), ...flags, log, code],
      { cwd: ROOT, env: { ...env, ...extraEnv, JUPYTER_PATH: path.join(ROOT, "tools", "jupyter") }, encoding: "utf8", timeout: 240_000 });
    const kernelLog = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "(no log written)";
    assert.equal(r.status, 0, `kernel_protocol.py failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}\nthe kernel's stderr:\n${kernelLog}`);
    return JSON.parse(r.stdout.trim().split("\n").pop() as string) as KernelReply;
  }

  test("the kernel: committed language_info, an answer to history requests, no TensorFlow start-up lines in the server log", () => {
    const log = path.join(work, "kernel-stderr.log");
    // Loading the native engine makes TensorFlow 2.21 log through absl before absl::InitializeLog(),
    // straight to file descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL says; launch.sh filters those lines.
    const native = fs.existsSync(path.join(ROOT, ".native", "tfjs-node", "package.json"));
    const code = native ? 'import { initBackend } from "./src/engine/backend";\nconsole.log((await initBackend("native")).kind);' : "";
    // TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 (and logs it then); forced on
    // here, so that the start-up lines come on any CPU, in the kernel and in the reference alike.
    const reply = kernelProtocol(log, code, [], { TF_ENABLE_ONEDNN_OPTS: "1" });
    // tslab alone says version "3.7.2" with a codemirror_mode; JupyterLab saves whatever this says.
    assert.deepEqual(reply.language_info, { name: "typescript", file_extension: ".ts", mimetype: "text/typescript", version: tslabVersions.typescript });
    assert.deepEqual(reply.history, { status: "ok", history: [] });
    const stderr = fs.readFileSync(log, "utf8");
    assert.doesNotMatch(stderr, /unknown msg_type/, "tslab's warning for the history request");
    if (native) {
      const streams = reply.outputs.filter((o) => o.type === "stream");
      assert.deepEqual(streams.map((o) => [o.content.name, o.content.text]), [["stdout", "native-cpu\n"]]);
      // The reference: the same engine loaded by a plain Node process does print them.
      const plain = spawnSync(process.execPath, ["--import", "tsx", "-e", 'require("./src/engine/backend").initBackend("native").then((i) => console.log(i.kind))'],
        { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2", TF_ENABLE_ONEDNN_OPTS: "1" }, encoding: "utf8", timeout: 120_000 });
      assert.match(plain.stderr, /absl::InitializeLog\(\)[\s\S]*oneDNN custom operations are on/, "TensorFlow no longer prints its start-up lines: the filter in launch.sh can go");
      assert.doesNotMatch(stderr, /absl::InitializeLog|oneDNN custom operations/, `the server log got TensorFlow's start-up lines:\n${stderr}`);
    }
  });

  test("a kernel that finds one of its ports taken exits at once naming it, and the headless client starts a new one on new ports", () => {
    // Jupyter picks free ports, then starts the kernel; another process can take one in between.
    // tslab alone logs the failed bind and stays alive without answering, until the client's timeout.
    const log = path.join(work, "kernel-busy-port.log");
    const reply = kernelProtocol(log, "", ["--busy-port"]);
    assert.equal(reply.starts, 2, "the first start (its shell port held by a listening socket) died; the second, on new ports, answered");
    assert.deepEqual(reply.history, { status: "ok", history: [] });
    const kernelLog = fs.readFileSync(log, "utf8");
    assert.match(kernelLog, new RegExp(`^bias-init kernel: cannot bind tcp://127\\.0\\.0\\.1:${reply.busy_port} \\(Address already in use\\); exiting`, "m"), kernelLog);
    assert.doesNotMatch(kernelLog, /UnhandledPromiseRejection/, kernelLog);
  });

  test("00_walkthrough runs top to bottom: sample images, figures, the demo's progress and step losses", () => {
    execute("00_walkthrough.ipynb");
    const outputs = checkCommon(path.join(out, "00_walkthrough.ipynb"));
    const figures = figuresOf(outputs);
    // Class balance and the demo's step-loss curve.
    assert.equal(figures.length, 2, `figures: ${figures.map(outputText).join(" | ")}`);
    assert.ok(outputs.some((o) => joined(o.data?.["text/html"] as string | undefined).includes("data:image/png;base64,")), "sample images");
    assert.ok(outputs.some((o) => /^done in .*: 2 of 2 unit\(s\) complete in /.test(outputText(o))), "the demo's progress display ends with its summary line");
    const text = outputs.map(outputText).join("\n");
    assert.match(text, /test BCE \(loss\) and ROC-AUC in eval mode \(running BatchNorm statistics\), and in train mode/, "eval and train mode side by side");
    assert.match(text, /roc_auc_train_mode/);
    assert.match(text, /before any step \(means over trials\): the test logits in eval mode/, "the logit spread table");
    assert.match(text, /positive rate arm \(bias -2\.\d{3}\):\*\* in eval mode the test logits have mean -2\.\d{3} and SD 0\.000/, "every test logit is the bias");
    assert.match(text, /The bias sets where the logits are centred, not how far they spread\./);
    assert.match(text, /the hockey stick, measured\. Steps to catch up: optimizer steps before the vanilla arm's smoothed training loss comes within 5%/);
    const setup = outputs.map(outputText).filter((t) => t.startsWith("setup"));
    assert.equal(setup.length, 1, `one setup status output (updated in place, nbclient keeps its last state): ${setup.join(" | ")}`);
    assert.match(setup[0], /^setup done in \d+\.\d s \(loading engine: \d+\.\d s; (generating the synthetic stand-in \([\d,]+ images\)|loading the synthetic stand-in|loading CIFAR-10 from \S+): \d+\.\d s\)/);
  });

  test("04_summary renders every section from the store: known records, an unavailable half, a missing run", () => {
    // The store as 01 and 02 would leave it with the smoke preset, written directly (no training):
    // two paired scratch trials with known numbers, the ImageNet half marked unavailable.
    const config = makeConfig("smoke", mergeOverrides({ data: { dir: data } }, planOverrides("scratch", "smoke")));
    const { store, dataset } = storeFor(config, results);
    store.init({ seeded: "test/notebooks.test.ts" });
    const loss = { vanilla: [[0.70, 0.40, 0.35], [0.71, 0.42, 0.37]], positive_rate: [[0.33, 0.36, 0.34], [0.33, 0.35, 0.345]] };
    for (const arm of ["vanilla", "positive_rate"] as const) {
      for (const trial of [0, 1]) {
        const unit = { backbone: "scratch" as const, arm, trial };
        for (const epoch of [0, 1, 2]) {
          // Step losses of the first epoch: vanilla from 0.7 down to the positive-rate arm's 0.33 by step 6 (its EMA, span 10, by step 19).
          const steps = epoch !== 1 ? null : Array.from({ length: 30 }, (_, i) => ({ backbone: "scratch" as const, arm, trial, epoch: 1, step: i + 1,
            loss: arm === "vanilla" ? Math.max(0.33, 0.7 - 0.075 * i) + 0.001 * trial : 0.33 }));
          store.appendEpoch(unit, {
            backbone: "scratch", arm, trial, epoch, loss: loss[arm][trial][epoch], roc_auc: 0.5 + 0.1 * epoch + 0.01 * trial,
            output_bias_value: arm === "vanilla" ? 0.01 : -2.2, train_loss: epoch === 0 ? null : 0.3, wall_s: 1, images_per_s: epoch === 0 ? null : 50,
            seed: trial, dataset, backend: "js", ece: 0.05 + 0.01 * trial, mean_prob: arm === "vanilla" ? 0.4 - 0.1 * epoch : 0.1, test_positive_rate: 0.1,
          }, null, steps);
        }
        store.setStatus(unit, "done");
        store.setStatus({ backbone: "imagenet", arm, trial }, "unavailable", "no ImageNet weights for the tiny model (test)");
      }
    }
    const exported = path.join(reports, "learning_curves_scratch.png");
    execute("04_summary.ipynb");
    const outputs = checkCommon(path.join(out, "04_summary.ipynb"));
    const figures = figuresOf(outputs);
    assert.equal(figures.length, 3, `scratch learning curves, paired difference and calibration: ${figures.map(outputText).join(" | ")}`);
    assert.ok(figures.some((f) => /Calibration by bias initialization: From scratch/.test(JSON.stringify(f.data?.["application/vnd.plotly.v1+json"]))), "the calibration figure");
    const text = outputs.map(outputText).join("\n");
    assert.match(text, /\*\*scratch\*\* \(`[^`]+`\): 4 of 4 unit\(s\) complete\./);
    assert.match(text, /\*\*imagenet\*\* \(`[^`]+`\): 0 of 4 unit\(s\) complete, 4 not runnable\./);
    // Epoch 2 differences -0.01 and -0.025: mean -0.0175, and with n = 2 (t = 12.71) the CI spans 0.
    assert.match(text, /From scratch \(2 epochs\), after epoch 2:\*\* no test-BCE difference the trials can resolve \(the CI includes 0\): positive rate - vanilla = -0\.0175 \(95% CI /);
    assert.match(text, /\*\*ImageNet weights \(2 epochs\): not run\.\*\* No ImageNet weights for the tiny model \(test\)/);
    assert.match(text, /From scratch, convergence run \(4 epochs\): no results in the store yet/);
    assert.match(text, /From scratch \(SYNTHETIC data\): the hockey stick, measured\..* 2 of 2 pairs caught up within epoch 1/, "the hockey-stick table");
    assert.match(text, /loss per arm and epoch, mean and 95% CI: Student t over trials, loss on the log scale, mapped back/);
    assert.match(text, /Holm-corrected/);
    assert.ok(fs.existsSync(exported), `${exported}: the reference figure was not exported`);
    // The sweep section, before notebook 05 has run: what its stores hold and where to fill them.
    assert.match(text, /Target rate 0\.1: \*\*sweep\*\* \(`[^`]+`\): 0 of 4 unit\(s\) complete; run `05_imbalance_sweep` to train the other 4\./);
    assert.match(text, /No sweep results in the store yet \(rates 0\.1, 0\.02\): run `05_imbalance_sweep`/);
  });

  // The sweep's stores as notebook 05 leaves them with the smoke preset (rates 0.1 and 0.02, two
  // paired trials, epochs 0-2), written directly with known numbers: the notebook trains nothing.
  // Its real training is test/sweep.test.ts's acceptance run.
  const sweepHtml = path.join(reports, "05_imbalance_sweep.html");
  test("05_imbalance_sweep through `make report`'s script: the data per rate, five figures, the hockey-stick table, conclusions from the numbers", () => {
    const base = makeConfig("smoke", mergeOverrides({ data: { dir: data } }, planOverrides("sweep", "smoke")));
    const counts = { 0.1: { train: [1280, 128], test: [1200, 120] }, 0.02: { train: [1176, 24], test: [1102, 22] } } as const;
    for (const config of rateConfigs(base, planRates("sweep", "smoke") as number[])) {
      const rate = config.data.targetPositiveRate as 0.1 | 0.02;
      const c = counts[rate];
      const p = c.train[1] / c.train[0];
      const { store, dataset } = storeFor(config, results);
      store.init({ seeded: "test/notebooks.test.ts", positiveRate: p, testPositiveRate: c.test[1] / c.test[0],
        counts: { train: { images: c.train[0], positives: c.train[1] }, test: { images: c.test[0], positives: c.test[1] } } });
      const h = entropyNats(p);
      const steps = Math.ceil(c.train[0] / config.trainBatch);
      const loss = { vanilla: rate === 0.1 ? [0.69, 0.40, 0.35] : [0.69, 0.15, 0.12], positive_rate: rate === 0.1 ? [0.3251, 0.36, 0.33] : [0.0979, 0.10, 0.09] };
      for (const arm of ["vanilla", "positive_rate"] as const) {
        for (const trial of [0, 1]) {
          const unit = { backbone: "scratch" as const, arm, trial };
          for (const epoch of [0, 1, 2]) {
            const stepRecords = epoch !== 1 ? null : Array.from({ length: steps }, (_, i) => ({ backbone: "scratch" as const, target_positive_rate: rate, arm, trial, epoch: 1, step: i + 1,
              loss: arm === "vanilla" ? Math.max(h, 0.69 - 0.05 * i) + 0.001 * trial : h }));
            store.appendEpoch(unit, {
              backbone: "scratch", target_positive_rate: rate, arm, trial, epoch, loss: loss[arm][epoch] + (epoch === 0 ? 0 : (arm === "vanilla" ? 0.01 : 0.005) * trial),
              roc_auc: epoch === 0 ? 0.5 : 0.7 + 0.1 * epoch + 0.01 * trial, output_bias_value: arm === "vanilla" ? 0.01 : Math.log(p / (1 - p)), train_loss: epoch === 0 ? null : 0.3,
              wall_s: 1, images_per_s: epoch === 0 ? null : 50, seed: trial, dataset, backend: "js", ece: 0.05 + 0.01 * trial, mean_prob: arm === "vanilla" ? 0.5 - 0.2 * epoch : p, test_positive_rate: c.test[1] / c.test[0],
            }, null, stepRecords);
          }
          store.setStatus(unit, "done");
        }
      }
    }
    const r = spawnSync("bash", [path.join(ROOT, "tools/jupyter/report.sh"), path.join(ROOT, "notebooks/05_imbalance_sweep.ipynb")], { cwd: ROOT, env, encoding: "utf8", timeout: 240_000 });
    assert.equal(r.status, 0, `report.sh failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
    const outputs = checkCommon(path.join(reports, "05_imbalance_sweep.ipynb"));
    const figures = figuresOf(outputs);
    const titles = figures.map((f) => String((f.data?.["application/vnd.plotly.v1+json"] as { layout: { title: { text: string } } }).layout.title.text));
    assert.deepEqual(titles.map((t) => t.replace(/:.*/, "")), ["Test metrics by bias initialization and positive rate", "Test BCE before any step against the positive rate",
      "The hockey stick against the positive rate", "Paired difference after the last epoch (2) against the positive rate", "Calibration by bias initialization and positive rate"]);
    assert.ok(titles.every((t) => t.endsWith("From scratch, 2 trials (synthetic data)")), titles.join(" | "));
    const text = outputs.map(outputText).join("\n");
    assert.match(text, /Target rate 0\.02: \*\*sweep\*\* \(`[^`]+`\): 4 of 4 unit\(s\) complete\./);
    assert.match(text, /Each target rate's data as the store recorded it/);
    assert.match(text, /The hockey stick per rate, vanilla against each prior arm\. Steps to catch up: /);
    assert.match(text, /\*\*These numbers come from the SYNTHETIC stand-in data, not CIFAR-10\.\*\*/);
    assert.match(text, /\*\*p = 0\.0204\*\* \(target 0\.02; train 1176 images, 24 positive; test 1102 images, 22 positive\): before any step, test BCE 0\.6900 \(vanilla\), 0\.0979 \(positive rate\), against H\(p\) = 0\.0996/);
    // Epoch 2 at p = 0.1: -0.02 and -0.025, mean -0.0225; two trials cannot resolve it.
    assert.match(text, /after epoch 2, positive rate - vanilla: test BCE -0\.0225 \(95% CI -0\.\d{4} to \+0\.\d{4}, 2 paired trials\) \(no difference the trials resolve\)/);
    assert.match(text, /the vanilla arm caught up with the positive-rate arm in 2 of 2 pairs/);
    assert.match(text, /Across rates, before any step:\*\* the vanilla arm's test BCE exceeds H\(p\) by 0\.3649 at p = 0\.1000, 0\.5904 at p = 0\.0204/);
    assert.ok(fs.existsSync(sweepHtml), `${sweepHtml}: no HTML page`);
  });

  test("05_imbalance_sweep's HTML page: every figure draws its traces offline in headless Chromium", { skip: chromiumMissing() }, async () => {
    const html = fs.readFileSync(sweepHtml, "utf8");
    assert.doesNotMatch(html, /<script[^>]+src=/i, "the report loads no external script");
    const drawn = await measure(sweepHtml);
    assert.equal(drawn.length, html.split("window.Plotly.newPlot(div, fig.data").length - 1);
    assert.equal(drawn.length, 5);
    for (const d of drawn) checkDrawn(d, "05_imbalance_sweep.html");
  });
});
