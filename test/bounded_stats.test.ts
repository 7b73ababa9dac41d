// Intervals that respect each metric's range (logit scale for [0, 1], log scale for BCE), checked
// against scipy; the paired t test and Holm's correction; and the acceptance check over every
// figure spec and summary table: no ROC-AUC or probability interval outside [0, 1], no BCE
// interval below 0, with 2 trials and with 10.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { meanCiOnScale } from "../src/experiment/stats/scales";
import { meanCi } from "../src/experiment/stats/student_t";
import { holmLower, holmReject, pairedTTestP } from "../src/experiment/stats/multiple_comparisons";
import { pairedDifference, summarize } from "../src/experiment/stats/grouping";
import { summaryTables } from "../src/experiment/stats/tables";
import type { ExperimentResult } from "../src/experiment/grid";
import type { EpochRecord, StepRecord } from "../src/experiment/records";
import { makeConfig } from "../src/config";
import { biasCurve, calibrationFigure, learningCurves, stepLossCurve } from "../src/viz/figures";
import type { PlotlyFigure } from "../src/viz/plotly_figure";
import { makeRng } from "../src/rng";

const ROOT = path.resolve(__dirname, "..");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const noPython = existsSync(PYTHON) ? false : `skipped: ${PYTHON} is missing (make setup creates it)`;

// scipy's answers: t.interval on the transformed values, mapped back; ttest_1samp's two-sided p.
const SCIPY = `
import json, sys
import numpy as np
from scipy import stats
from scipy.special import expit, logit
out = []
for case in json.load(sys.stdin):
    x = np.asarray(case["values"], dtype=np.float64)
    z = {"logit": logit, "log": np.log, "natural": lambda v: v}[case["scale"]](x)
    lo, hi = stats.t.interval(0.95, len(z) - 1, loc=np.mean(z), scale=stats.sem(z))
    back = {"logit": expit, "log": np.exp, "natural": lambda v: v}[case["scale"]]
    out.append({"ci_low": float(back(lo)), "ci_high": float(back(hi)), "p": float(stats.ttest_1samp(x, 0.0).pvalue)})
json.dump(out, sys.stdout)
`;

test("meanCiOnScale: logit and log intervals equal scipy's t.interval mapped back; paired t test p equals ttest_1samp", { skip: noPython }, () => {
  const cases = [
    { values: [0.95, 0.8], scale: "logit" }, // the natural-scale interval reaches 0.875 + 0.953
    { values: [0.91, 0.97, 0.88, 0.99, 0.93, 0.95, 0.9, 0.96, 0.94, 0.98], scale: "logit" },
    { values: [0.03, 0.01, 0.2], scale: "logit" },
    { values: [0.33, 0.2], scale: "log" },
    { values: [0.05, 0.4, 0.12, 0.3, 0.08, 0.25, 0.6, 0.11, 0.09, 0.15], scale: "log" },
    { values: [-0.03, -0.05, 0.01, -0.02], scale: "natural" },
  ] as const;
  const answers = JSON.parse(execFileSync(PYTHON, ["-c", SCIPY], { input: JSON.stringify(cases), encoding: "utf8" })) as Array<{ ci_low: number; ci_high: number; p: number }>;
  cases.forEach((c, i) => {
    const ours = meanCiOnScale(c.values, c.scale);
    assert.equal(ours.scale, c.scale);
    for (const end of ["ci_low", "ci_high"] as const) {
      const expected = answers[i][end];
      assert.ok(Math.abs((ours[end] as number) - expected) <= 1e-12 * Math.max(1, Math.abs(expected)), `case ${i} ${end}: ${ours[end]} vs scipy ${expected}`);
    }
    const p = pairedTTestP(meanCi(c.values)) as number;
    assert.ok(Math.abs(p - answers[i].p) <= 1e-10 * Math.max(answers[i].p, 1e-300) + 1e-15, `case ${i} p: ${p} vs scipy ${answers[i].p}`);
  });
  // The first case on the natural scale leaves [0, 1]; on the logit scale it cannot.
  assert.ok((meanCi([0.95, 0.8]).ci_high as number) > 1.5);
  const bounded = meanCiOnScale([0.95, 0.8], "logit");
  assert.ok((bounded.ci_low as number) > 0 && (bounded.ci_high as number) < 1);
});

test("meanCiOnScale: values on a bound, one value, values outside the scale's range", () => {
  const perfect = meanCiOnScale([1, 1], "logit");
  assert.equal(perfect.mean, 1);
  assert.ok((perfect.ci_low as number) > 0.999 && (perfect.ci_high as number) <= 1);
  const mixed = meanCiOnScale([0, 0.9], "logit");
  assert.ok((mixed.ci_low as number) >= 0 && (mixed.ci_high as number) <= 1);
  assert.deepEqual(meanCiOnScale([0.4], "logit"), { n: 1, mean: 0.4, sd: null, ci_low: null, ci_high: null, scale: "logit" });
  assert.throws(() => meanCiOnScale([0.5, 1.2], "logit"), /1.2 is outside the range of the logit scale/);
  assert.throws(() => meanCiOnScale([-0.1, 0.2], "log"), /-0.1 is outside the range of the log scale/);
});

test("pairedTTestP and holmReject: hand cases", () => {
  assert.equal(pairedTTestP({ n: 1, mean: 0.2, sd: null, ci_low: null, ci_high: null }), null);
  assert.equal(pairedTTestP({ n: 3, mean: -0.1, sd: 0, ci_low: -0.1, ci_high: -0.1 }), 0);
  assert.equal(pairedTTestP({ n: 3, mean: 0, sd: 0, ci_low: 0, ci_high: 0 }), 1);
  // df = 1 is Cauchy: p = 2 * (1/2 - atan(|t|) / pi); mean 1, sd sqrt(2), n 2 gives t = 1, p = 0.5.
  assert.ok(Math.abs((pairedTTestP({ n: 2, mean: 1, sd: Math.SQRT2, ci_low: null, ci_high: null }) as number) - 0.5) < 1e-14);
  // Sorted 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2: the first two are rejected, then Holm stops.
  assert.deepEqual(holmReject([0.01, 0.04, 0.03, 0.005]), [true, false, false, true]);
  assert.deepEqual(holmReject([0.04]), [true]);
  // 0.001 <= 0.05/2, then 0.04 <= 0.05/1: both; with 0.06 the second is not.
  assert.deepEqual(holmReject([0.04, 0.001]), [true, true]);
  assert.deepEqual(holmReject([0.06, 0.001]), [false, true]);
  assert.deepEqual(holmReject([]), []);
  assert.throws(() => holmReject([0.5, 1.5]), /p-value 1.5 is not in \[0, 1\]/);
  // holmLower: rejected and negative; a rejected positive difference and an unrejected one are not lower.
  const row = (id: string, mean: number, sd: number) => ({ n: 3, mean, sd, ci_low: null, ci_high: null, id });
  assert.deepEqual(holmLower([row("lower", -0.1, 0), row("higher", 0.1, 0), row("same", 0, 0), row("noisy", -0.1, 1)]).map((r) => r.id), ["lower"]);
});

test("paired differences of ROC-AUC stay in [-1, 1], the only values a difference of two AUCs can take; BCE differences are not cut", () => {
  const record = (arm: "vanilla" | "positive_rate", trial: number, auc: number, loss: number): EpochRecord => ({
    backbone: "scratch", arm, trial, epoch: 1, loss, roc_auc: auc, output_bias_value: 0, train_loss: 0.1, wall_s: 1, images_per_s: null,
    seed: trial, dataset: "synthetic", backend: "js", ece: 0.1, mean_prob: 0.1, test_positive_rate: 0.1, logit_mean: 0, logit_sd: 1,
  });
  // Differences +0.5 and -0.3: the plain Student t interval (t = 12.71 with 1 df) is 0.1 -+ 5.08.
  const records = [record("vanilla", 0, 0.4, 0.9), record("positive_rate", 0, 0.9, 0.1), record("vanilla", 1, 0.8, 0.1), record("positive_rate", 1, 0.5, 0.9)];
  const plain = meanCi([0.5, -0.3]);
  assert.ok((plain.ci_low as number) < -4 && (plain.ci_high as number) > 4, "non-vacuous: uncut, the interval leaves [-1, 1]");
  const [auc] = pairedDifference(records, "roc_auc");
  assert.ok(Math.abs(auc.mean - 0.1) < 1e-12);
  assert.deepEqual([auc.ci_low, auc.ci_high], [-1, 1]);
  const [bce] = pairedDifference(records, "loss");
  const plainBce = meanCi([-0.8, 0.8]);
  assert.deepEqual([bce.ci_low, bce.ci_high], [plainBce.ci_low, plainBce.ci_high]);
});

/** Trials of both arms over epochs 0..3 with ROC-AUC near 1 and BCE near 0, noisy: the cases that broke natural-scale intervals. */
function extremeRecords(trials: number): { records: EpochRecord[]; steps: StepRecord[] } {
  const rng = makeRng("bounded_stats.test", trials);
  const records: EpochRecord[] = [];
  const steps: StepRecord[] = [];
  for (const arm of ["vanilla", "positive_rate"] as const) {
    for (let trial = 0; trial < trials; trial++) {
      for (let epoch = 0; epoch <= 3; epoch++) {
        const auc = epoch === 0 ? 0.5 : Math.min(1, 0.8 + 0.2 * rng.next() + 0.05 * epoch);
        records.push({
          backbone: "scratch", arm, trial, epoch, loss: epoch === 0 ? 0.69 : 0.002 + 0.3 * rng.next() ** 3, roc_auc: auc,
          output_bias_value: -6 + 4 * rng.next(), train_loss: epoch === 0 ? null : 0.001 + 0.2 * rng.next() ** 3, wall_s: 1, images_per_s: null,
          seed: trial, dataset: "synthetic", backend: "js",
          ece: 0.3 * rng.next() ** 4, mean_prob: 0.02 + 0.2 * rng.next() ** 3, test_positive_rate: 0.1, logit_mean: -2, logit_sd: rng.next() ** 4,
        });
      }
      for (let step = 1; step <= 5; step++) steps.push({ backbone: "scratch", arm, trial, epoch: 1, step, loss: 0.001 + 0.7 * rng.next() ** 4 });
    }
  }
  return { records, steps };
}

/** Every band's y values, per y axis ("y" left panel, "y2" right). */
function bandValues(fig: PlotlyFigure): Map<string, number[]> {
  const byAxis = new Map<string, number[]>();
  for (const t of fig.data.filter((d) => d.fill === "toself")) {
    const ys = (t.y as Array<number | null>).filter((y): y is number => y !== null);
    byAxis.set(t.yaxis as string, [...(byAxis.get(t.yaxis as string) ?? []), ...ys]);
  }
  return byAxis;
}

for (const trials of [2, 10]) {
  test(`acceptance, ${trials} trials: no ROC-AUC or probability interval outside [0, 1], no BCE interval below 0, in figures and summary tables`, () => {
    const { records, steps } = extremeRecords(trials);
    // Non-vacuous: on the natural scale these records do leave the ranges.
    const natural = [...new Set(records.map((r) => `${r.arm} ${r.epoch}`))].map((key) => meanCi(records.filter((r) => `${r.arm} ${r.epoch}` === key).map((r) => r.roc_auc)));
    if (trials === 2) assert.ok(natural.some((m) => (m.ci_high as number) > 1), "natural-scale ROC-AUC intervals would exceed 1");
    const options = { backbone: "scratch" as const, dataset: "synthetic" as const, positiveRate: 0.1, trials };
    const inUnit = (ys: number[] | undefined, what: string): void => {
      assert.ok(ys && ys.length > 0, `${what}: bands drawn`);
      for (const y of ys) assert.ok(y >= 0 && y <= 1, `${what}: ${y} outside [0, 1]`);
    };
    const positive = (ys: number[] | undefined, what: string): void => {
      assert.ok(ys && ys.length > 0, `${what}: bands drawn`);
      for (const y of ys) assert.ok(y > 0, `${what}: ${y} not above 0`);
    };
    const curves = bandValues(learningCurves(records, options));
    positive(curves.get("y"), "learning curves BCE");
    inUnit(curves.get("y2"), "learning curves ROC-AUC");
    const calibration = bandValues(calibrationFigure(records, options));
    inUnit(calibration.get("y"), "ECE");
    inUnit(calibration.get("y2"), "mean probability");
    inUnit(bandValues(biasCurve(records, options)).get("y"), "sigmoid(bias)");
    positive(bandValues(stepLossCurve(steps, options)).get("y"), "step BCE");
    const result = { config: makeConfig("smoke", { backbones: ["scratch"], trials, epochs: 3 }), records, steps, failed: [], unavailable: [], dataset: "synthetic", positiveRate: 0.1 } as unknown as ExperimentResult;
    let checked = 0;
    for (const { table, caption } of summaryTables(result, ["loss", "roc_auc", "train_loss", "ece", "mean_prob", "logit_sd"])) {
      if (!/per arm and epoch/.test(caption)) continue;
      const metric = (table.column("metric").values as string[])[0];
      const lows = (table.column("ci_low").values as Array<number | null>).filter((v): v is number => v !== null);
      const highs = (table.column("ci_high").values as Array<number | null>).filter((v): v is number => v !== null);
      assert.ok(lows.length > 0, `${metric}: intervals in the table`);
      if (["roc_auc", "ece", "mean_prob"].includes(metric)) inUnit([...lows, ...highs], `table ${metric}`);
      else positive([...lows, ...highs], `table ${metric}`);
      assert.match(caption, new RegExp(`${metric} on the (logit|log) scale, mapped back so it cannot leave the metric's range`));
      checked++;
    }
    assert.equal(checked, 6);
    assert.equal(summarize(records, "roc_auc").every((r) => r.scale === "logit"), true);
  });
}
