import { test } from "node:test";
import assert from "node:assert/strict";
import { ARM_STYLE, learningCurves, stepLossCurve, biasCurve, pairedDifferenceFigure, classBalanceFigure, calibrationFigure } from "../src/viz/figures";
import type { PlotlyFigure } from "../src/viz/plotly_figure";
import { summarize, stepSummary, pairedDifference } from "../src/experiment/stats/grouping";
import type { EpochRecord, StepRecord } from "../src/experiment/records";
import { entropyNats } from "../src/maths";
import { CLASS_NAMES } from "../src/data/cifar10";
import { positiveRate, toBinaryLabels } from "../src/data/task";

type Trace = Record<string, unknown>;
const P = 0.1;
const LOGIT_P = Math.log(P / (1 - P));

/** Three trials per arm and backbone, epochs 0..2, values that differ by trial and arm. */
function makeRecords(dataset: EpochRecord["dataset"]): EpochRecord[] {
  const records: EpochRecord[] = [];
  for (const backbone of ["imagenet", "scratch"] as const) {
    for (const arm of ["vanilla", "positive_rate"] as const) {
      for (let trial = 0; trial < 3; trial++) {
        for (let epoch = 0; epoch <= 2; epoch++) {
          const start = arm === "vanilla" ? 0.69 : 0.33;
          records.push({
            backbone, arm, trial, epoch,
            loss: start / (1 + epoch) + 0.01 * trial,
            roc_auc: 0.5 + 0.1 * epoch + 0.02 * trial + (arm === "positive_rate" ? 0.01 : 0),
            output_bias_value: (arm === "vanilla" ? 0.03 * trial : LOGIT_P) - 0.1 * epoch,
            train_loss: epoch === 0 ? null : 0.3, wall_s: epoch, images_per_s: null, seed: 1, dataset, backend: "cpu",
          });
        }
      }
    }
  }
  return records;
}

const RECORDS = makeRecords("synthetic");
const imagenet = RECORDS.filter((r) => r.backbone === "imagenet");
const traces = (fig: PlotlyFigure): Trace[] => fig.data;
const bands = (fig: PlotlyFigure): Trace[] => traces(fig).filter((t) => t.fill === "toself");
const lines = (fig: PlotlyFigure): Trace[] => traces(fig).filter((t) => t.fill === undefined);
const layoutAt = (fig: PlotlyFigure, ...keys: string[]): unknown =>
  keys.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], fig.layout);

/** The polygon a band should be: upper edge forward, lower edge back. */
function expectedBand(rows: ReadonlyArray<{ ci_low: number | null; ci_high: number | null }>, xs: number[]): { x: number[]; y: Array<number | null> } {
  return { x: [...xs, ...[...xs].reverse()], y: [...rows.map((r) => r.ci_high), ...rows.map((r) => r.ci_low).reverse()] };
}

test("learningCurves: two panels, arms styled, bands equal summarize()'s CI exactly", () => {
  const fig = learningCurves(RECORDS, { backbone: "imagenet", dataset: "synthetic", positiveRate: P });
  assert.equal(traces(fig).length, 8);
  assert.deepEqual(lines(fig).map((t) => [t.name, (t.line as Trace).color, t.xaxis, t.yaxis, t.showlegend, t.mode]), [
    ["Vanilla", "#e63946", "x", "y", true, "lines+markers"],
    ["Positive rate", "#1d3557", "x", "y", true, "lines+markers"],
    ["Vanilla", "#e63946", "x2", "y2", false, "lines+markers"],
    ["Positive rate", "#1d3557", "x2", "y2", false, "lines+markers"],
  ]);
  const loss = summarize(imagenet, "loss");
  const auc = summarize(imagenet, "roc_auc");
  const expected = [
    expectedBand(loss.filter((r) => r.arm === "vanilla"), [0, 1, 2]),
    expectedBand(loss.filter((r) => r.arm === "positive_rate"), [0, 1, 2]),
    expectedBand(auc.filter((r) => r.arm === "vanilla"), [0, 1, 2]),
    expectedBand(auc.filter((r) => r.arm === "positive_rate"), [0, 1, 2]),
  ];
  assert.deepEqual(bands(fig).map((t) => ({ x: t.x, y: t.y })), expected);
  assert.deepEqual(bands(fig).map((t) => [t.fillcolor, t.hoverinfo, t.showlegend]), [
    ["rgba(230,57,70,0.2)", "skip", false], ["rgba(29,53,87,0.2)", "skip", false],
    ["rgba(230,57,70,0.2)", "skip", false], ["rgba(29,53,87,0.2)", "skip", false],
  ]);
  assert.deepEqual(lines(fig)[1].y, loss.filter((r) => r.arm === "positive_rate").map((r) => r.mean));
  assert.equal(layoutAt(fig, "yaxis", "title", "text"), "Binary Cross Entropy");
  assert.equal(layoutAt(fig, "yaxis2", "title", "text"), "ROC-AUC");
  assert.equal(layoutAt(fig, "xaxis", "title", "text"), "Epoch");
  assert.equal(layoutAt(fig, "xaxis2", "title", "text"), "Epoch");
  assert.deepEqual(layoutAt(fig, "xaxis2", "domain"), [0.55, 1]);
  assert.equal(layoutAt(fig, "legend", "title", "text"), "Bias initialization");
  assert.equal(layoutAt(fig, "title", "text"), "Test metrics by bias initialization: ImageNet weights, 3 trials (synthetic data)");
  const [shape] = layoutAt(fig, "shapes") as Trace[];
  assert.deepEqual([shape.y0, shape.y1, shape.yref, (shape.line as Trace).dash], [entropyNats(P), entropyNats(P), "y", "dash"]);
  assert.equal((layoutAt(fig, "annotations") as Trace[])[0].text, "H(p) = 0.325");
  assert.deepEqual(JSON.parse(JSON.stringify(fig)), fig);
});

test("learningCurves: real-data title, custom title, one trial has no band, a gap splits the band", () => {
  const real = learningCurves(makeRecords("cifar10"), { backbone: "scratch", dataset: "cifar10", positiveRate: P, title: "Frog vs not" });
  assert.equal(layoutAt(real, "title", "text"), "Frog vs not: From scratch, 3 trials");
  const oneTrial = learningCurves(RECORDS.filter((r) => r.trial === 0), { backbone: "imagenet", dataset: "synthetic", positiveRate: P });
  assert.equal(traces(oneTrial).length, 4);
  assert.equal(bands(oneTrial).length, 0);
  assert.match(layoutAt(oneTrial, "title", "text") as string, /ImageNet weights, 1 trial \(synthetic data\)$/);
  // Vanilla trials 1 and 2 lack epoch 1: units with fewer epochs than the others are left out, and the note says so.
  const gappy = imagenet.filter((r) => !(r.arm === "vanilla" && r.epoch === 1 && r.trial > 0));
  const left = learningCurves(gappy, { backbone: "imagenet", dataset: "synthetic", positiveRate: P });
  assert.deepEqual(lines(left)[0].y, [0, 1, 2].map((epoch) => 0.69 / (1 + epoch)), "trial 0 alone");
  assert.match((layoutAt(left, "annotations") as Trace[]).map((a) => a.text).join("\n"),
    /Vanilla: n = 1 of 3 trials; 2 with fewer epochs than the others \(excluded\)\. Positive rate: n = 3 of 3 trials\./);
  // A metric measured in only one trial at epoch 1 (older records lack it): the band is two segments, separated by nulls.
  const partly = imagenet.map((r) => ({ ...r, ece: r.arm === "vanilla" && r.epoch === 1 && r.trial > 0 ? undefined : 0.1 + 0.01 * r.trial + 0.02 * r.epoch, mean_prob: 0.1 }));
  const band = bands(calibrationFigure(partly, { backbone: "imagenet", dataset: "synthetic", positiveRate: P }))[0];
  const rows = summarize(partly, "ece").filter((r) => r.arm === "vanilla");
  assert.deepEqual(band.x, [0, 0, null, 2, 2]);
  assert.deepEqual(band.y, [rows[0].ci_high, rows[0].ci_low, null, rows[2].ci_high, rows[2].ci_low]);
  const uneven = imagenet.filter((r) => !(r.arm === "positive_rate" && r.trial === 2));
  assert.match(
    layoutAt(learningCurves(uneven, { backbone: "imagenet", dataset: "synthetic", positiveRate: P }), "title", "text") as string,
    /ImageNet weights, Vanilla 3 trials, Positive rate 2 trials \(synthetic data\)$/,
  );
  assert.throws(
    () => learningCurves(RECORDS, { backbone: "imagenet", dataset: "cifar10", positiveRate: P }),
    /options.dataset is "cifar10" but a record .* has dataset "synthetic"/,
  );
  assert.throws(() => learningCurves([], { backbone: "imagenet", dataset: "cifar10", positiveRate: P }), /no epoch records for backbone "imagenet"/);
  assert.throws(() => learningCurves(RECORDS, { backbone: "imagenet", dataset: "synthetic", positiveRate: 0 }), /positiveRate must be in \(0, 1\)/);
});

test("stepLossCurve: first-epoch steps, bands equal stepSummary()'s CI", () => {
  const steps: StepRecord[] = [];
  for (const arm of ["vanilla", "positive_rate"] as const) {
    for (let trial = 0; trial < 4; trial++) {
      for (let epoch = 1; epoch <= 2; epoch++) {
        for (let step = 1; step <= 5; step++) {
          const loss = (arm === "vanilla" ? 0.69 / step : 0.33) + 0.01 * trial + 0.1 * (epoch - 1);
          steps.push({ backbone: "scratch", arm, trial, epoch, step, loss });
        }
      }
    }
  }
  const fig = stepLossCurve(steps, { backbone: "scratch", dataset: "cifar10", positiveRate: P });
  assert.equal(traces(fig).length, 4);
  assert.deepEqual(lines(fig).map((t) => [t.name, (t.line as Trace).color]), [["Vanilla", "#e63946"], ["Positive rate", "#1d3557"]]);
  const rows = stepSummary(steps.filter((s) => s.epoch === 1));
  assert.deepEqual(bands(fig)[0].y, expectedBand(rows.filter((r) => r.arm === "vanilla"), [1, 2, 3, 4, 5]).y);
  assert.deepEqual(lines(fig)[0].x, [1, 2, 3, 4, 5]);
  assert.equal(layoutAt(fig, "xaxis", "title", "text"), "Step (epoch 1)");
  assert.equal(layoutAt(fig, "title", "text"), "Training loss per step, epoch 1: From scratch, 4 trials");
  assert.equal((layoutAt(fig, "shapes") as Trace[])[0].y0, entropyNats(P));
  const second = stepLossCurve(steps, { backbone: "scratch", dataset: "synthetic", positiveRate: P, epoch: 2 });
  assert.ok(Math.abs((lines(second)[1].y as number[])[0] - (0.33 + 0.015 + 0.1)) < 1e-12);
  assert.match(layoutAt(second, "title", "text") as string, /\(synthetic data\)$/);
  assert.throws(() => stepLossCurve(steps, { backbone: "imagenet", dataset: "cifar10", positiveRate: P }), /no step records for backbone "imagenet" in epoch 1/);
});

test("biasCurve: mean of sigmoid(bias) per epoch against the positive rate", () => {
  const fig = biasCurve(RECORDS, { backbone: "imagenet", dataset: "synthetic", positiveRate: P });
  assert.equal(traces(fig).length, 4);
  const positive = lines(fig)[1];
  assert.equal(positive.name, "Positive rate");
  const y = positive.y as number[];
  assert.ok(Math.abs(y[0] - P) < 1e-15);
  assert.ok(Math.abs(y[2] - 1 / (1 + Math.exp(-(LOGIT_P - 0.2)))) < 1e-15);
  const vanilla = lines(fig)[0].y as number[];
  const sig = (z: number): number => 1 / (1 + Math.exp(-z));
  assert.ok(Math.abs(vanilla[0] - (sig(0) + sig(0.03) + sig(0.06)) / 3) < 1e-15);
  assert.equal(layoutAt(fig, "yaxis", "title", "text"), "sigmoid(output bias)");
  const [shape] = layoutAt(fig, "shapes") as Trace[];
  assert.equal(shape.y0, P);
  assert.equal((layoutAt(fig, "annotations") as Trace[])[0].text, "positive rate p = 0.100");
  assert.match(layoutAt(fig, "title", "text") as string, /ImageNet weights, 3 trials \(synthetic data\)/);
});

test("pairedDifferenceFigure: BCE and ROC-AUC differences, bands equal pairedDifference()'s CI", () => {
  const fig = pairedDifferenceFigure(RECORDS, { backbone: "imagenet", dataset: "synthetic" });
  assert.equal(traces(fig).length, 4);
  assert.deepEqual(lines(fig).map((t) => [t.name, t.xaxis, t.yaxis]), [
    ["Positive rate \u2212 Vanilla", "x", "y"], ["Positive rate \u2212 Vanilla", "x2", "y2"],
  ]);
  const loss = pairedDifference(imagenet, "loss");
  const auc = pairedDifference(imagenet, "roc_auc");
  assert.deepEqual(bands(fig).map((t) => ({ x: t.x, y: t.y })), [expectedBand(loss, [0, 1, 2]), expectedBand(auc, [0, 1, 2])]);
  assert.ok(Math.abs((lines(fig)[1].y as number[])[1] - 0.01) < 1e-12);
  assert.deepEqual((layoutAt(fig, "shapes") as Trace[]).map((s) => [s.yref, s.y0]), [["y", 0], ["y2", 0]]);
  assert.equal(layoutAt(fig, "yaxis", "title", "text"), "\u0394 Binary Cross Entropy");
  assert.equal(layoutAt(fig, "yaxis2", "title", "text"), "\u0394 ROC-AUC");
  assert.equal(layoutAt(fig, "title", "text"), "Positive rate \u2212 Vanilla: ImageNet weights, 3 paired trials (synthetic data)");
  const vanillaOnly = RECORDS.filter((r) => r.arm === "vanilla");
  assert.throws(() => pairedDifferenceFigure(vanillaOnly, { backbone: "imagenet", dataset: "synthetic" }), /no trial of backbone "imagenet" has both arms/);
});

test("classBalanceFigure: images per class, the positive class highlighted, p measured from the labels", () => {
  // Class i has i + 1 images, interleaved so that counting cannot rely on the order.
  const labels: number[] = [];
  for (let round = 0; round < 10; round++) for (let c = 9; c >= 0; c--) if (round <= c) labels.push(c);
  const frog = { index: 6, name: "frog" };
  const fig = classBalanceFigure(Uint8Array.from(labels), frog, "synthetic");
  assert.equal(traces(fig).length, 1);
  const [bars] = traces(fig);
  assert.equal(bars.type, "bar");
  assert.deepEqual(bars.x, [...CLASS_NAMES]);
  assert.deepEqual(bars.y, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const colors = (bars.marker as { color: string[] }).color;
  assert.deepEqual(colors.map((c, i) => (c === colors[frog.index] ? i : -1)).filter((i) => i >= 0), [6]);
  assert.equal(colors[frog.index], ARM_STYLE.positive_rate.color);
  // The rate the positive-rate bias is computed from (data/task.ts), here 7 / 55.
  const p = positiveRate(toBinaryLabels(Uint8Array.from(labels), frog.index));
  assert.equal(p.toFixed(4), "0.1273");
  assert.equal(layoutAt(fig, "title", "text"), `Training images per class: positive "frog" is p = ${p.toFixed(4)} of 55 (synthetic data)`);
  const real = classBalanceFigure(labels, { index: 9, name: "truck" }, "cifar10");
  assert.equal(layoutAt(real, "title", "text"), "Training images per class: positive \"truck\" is p = 0.1818 of 55");
  assert.equal(((traces(real)[0].marker as { color: string[] }).color)[9], ARM_STYLE.positive_rate.color);
  assert.throws(() => classBalanceFigure([], frog, "cifar10"), /no labels/);
});

const noteOf = (fig: PlotlyFigure): string => ((layoutAt(fig, "annotations") as Trace[]).find((a) => a.yshift !== undefined)?.text as string | undefined) ?? "";

test("figure notes state how each band was computed", () => {
  const options = { backbone: "imagenet" as const, dataset: "synthetic" as const, positiveRate: P };
  assert.equal(noteOf(learningCurves(RECORDS, options)), "95% CI: Student t over trials, BCE on the log scale, ROC-AUC on the logit scale, mapped back so it cannot leave the metric's range");
  assert.equal(noteOf(biasCurve(RECORDS, options)), "95% CI: Student t over trials, sigmoid(bias) on the logit scale, mapped back so it cannot leave the metric's range");
  assert.equal(noteOf(pairedDifferenceFigure(RECORDS, options)), "95% CI: Student t over paired trials, the differences on the natural scale, ROC-AUC's cut to [-1, 1]");
  const steps: StepRecord[] = [0, 1].flatMap((trial) => [1, 2].map((step) => ({ backbone: "imagenet" as const, arm: "vanilla" as const, trial, epoch: 1, step, loss: 0.5 + 0.1 * trial })));
  assert.equal(noteOf(stepLossCurve(steps, options)), "95% CI: Student t over trials, step BCE on the log scale, mapped back so it cannot leave the metric's range");
  const fig = learningCurves(RECORDS, options);
  assert.equal(layoutAt(fig, "height"), 420 + 38, "room for the one-line note");
});

test("learningCurves: from scratch in eval mode, the note says epoch 0 is the bias alone where the records show it", () => {
  const flat = RECORDS.map((r) => (r.epoch === 0 ? { ...r, roc_auc: 0.5, logit_sd: 0, logit_mean: r.output_bias_value } : r));
  const note = noteOf(learningCurves(flat, { backbone: "scratch", dataset: "synthetic", positiveRate: P, evalMode: "eval" }));
  assert.match(note, /<br>Epoch 0 from scratch in eval mode is the bias alone: at torchvision's init the backbone's output is ~0, so every test logit equals the bias \(test-logit SD at most 0\.0e\+0\): ROC-AUC exactly 0\.5/);
  assert.doesNotMatch(noteOf(learningCurves(flat, { backbone: "imagenet", dataset: "synthetic", positiveRate: P })), /bias alone/, "not for ImageNet weights");
  assert.doesNotMatch(noteOf(learningCurves(flat, { backbone: "scratch", dataset: "synthetic", positiveRate: P, evalMode: "train" })), /bias alone/, "not in train mode");
  const spread = flat.map((r) => (r.epoch === 0 && r.trial === 1 ? { ...r, logit_sd: 0.2 } : r));
  assert.doesNotMatch(noteOf(learningCurves(spread, { backbone: "scratch", dataset: "synthetic", positiveRate: P })), /bias alone/, "not when a unit's logits spread");
});

test("calibrationFigure: ECE and mean predicted probability per epoch against the measured test p", () => {
  const records = RECORDS.map((r) => ({ ...r, ece: 0.05 + 0.01 * r.trial + 0.02 * r.epoch, mean_prob: r.arm === "vanilla" ? 0.5 - 0.1 * r.epoch : 0.1, test_positive_rate: 0.098 }));
  const fig = calibrationFigure(records, { backbone: "scratch", dataset: "synthetic", positiveRate: P });
  const ece = summarize(records.filter((r) => r.backbone === "scratch"), "ece");
  assert.deepEqual(lines(fig).map((t) => [t.name, t.yaxis]), [["Vanilla", "y"], ["Positive rate", "y"], ["Vanilla", "y2"], ["Positive rate", "y2"]]);
  assert.deepEqual(lines(fig)[0].y, ece.filter((r) => r.arm === "vanilla").map((r) => r.mean));
  assert.deepEqual(bands(fig)[0].y, expectedBand(ece.filter((r) => r.arm === "vanilla"), [0, 1, 2]).y);
  (lines(fig)[2].y as number[]).forEach((y, epoch) => assert.ok(Math.abs(y - (0.5 - 0.1 * epoch)) < 1e-12, `vanilla mean probability at epoch ${epoch}: ${y}`));
  const [shape] = layoutAt(fig, "shapes") as Trace[];
  assert.deepEqual([shape.yref, shape.y0], ["y2", 0.098]);
  assert.equal(layoutAt(fig, "yaxis", "title", "text"), "Expected calibration error (15 bins)");
  assert.match(noteOf(fig), /^ECE: 15 equal-width bins on the predicted probability; per bin \|positive rate - mean probability\|, weighted by the bin's share of test images\.<br>95% CI: Student t over trials, ECE on the logit scale, mean probability on the logit scale/);
  assert.throws(() => calibrationFigure(RECORDS, { backbone: "scratch", dataset: "synthetic", positiveRate: P }), /hold no ECE \(written before calibration was recorded\)/);
});
