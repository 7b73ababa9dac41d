// What the notebooks show, tested without a kernel: output bundles (figures, tables, live progress,
// images), the conclusions written from numbers, and what 04_summary says about a plan. The real
// notebooks executed through the project's tslab kernel are in test/notebooks.test.ts.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { inflateSync } from "zlib";
import { DisplayMessage, setDisplaySink } from "../src/viz/kernel_output";
import { LiveProgress, StepStatus, scriptJson, tableBundle } from "../src/viz/html_output";
import { figureBundle, resetPlotlyInlined, showFigure, showPlotlyLibrary } from "../src/viz/plotly_inline";
import { rgbToPng } from "../src/viz/png";
import { conclusionParts, partFindings, verdict, writeConclusions } from "../src/experiment/conclusions";
import { formatInterval } from "../src/experiment/stats/student_t";
import type { EpochRecord } from "../src/experiment/records";
import { makeConfig } from "../src/config";
import { loadResults } from "../src/experiment/grid";
import { asSentence, planStatusText } from "../src/experiment/run_summary";
import { planOverrides } from "../src/experiment/plans";

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
