import { test } from "node:test";
import assert from "node:assert/strict";
import { tQuantile, tCdf, meanCi } from "../src/experiment/stats/student_t";
import { summarize, summarizeWith, pairedDifference, stepSummary } from "../src/experiment/stats/grouping";
import { resultsTable, summaryTable, RESULTS_COLUMNS } from "../src/experiment/stats/tables";
import type { EpochRecord, StepRecord } from "../src/experiment/records";

const close = (actual: number | null, expected: number, tol = 1e-12): void => {
  assert.ok(actual !== null && Math.abs(actual - expected) <= tol, `expected ${expected}, got ${actual}`);
};

// t(0.975, df) from scipy.stats.t.ppf (scipy 1.17.1), hard-coded so the test needs no Python.
const T975: Array<[number, number]> = [
  [1, 12.706204736174694], [2, 4.302652729749462], [3, 3.1824463052837078], [4, 2.7764451051977934],
  [5, 2.5705818356363146], [9, 2.262157162798205], [10, 2.228138851986274], [19, 2.0930240544083087],
  [29, 2.045229642132703], [99, 1.9842169515864174], [2.5, 3.5746548420036817],
];

test("tQuantile: scipy's values and the textbook 12.7062, 4.3027, 2.2622", () => {
  for (const [df, expected] of T975) close(tQuantile(0.975, df), expected, 1e-13 * expected);
  assert.equal(tQuantile(0.975, 1).toFixed(4), "12.7062");
  assert.equal(tQuantile(0.975, 2).toFixed(4), "4.3027");
  assert.equal(tQuantile(0.975, 9).toFixed(4), "2.2622");
  close(tQuantile(0.9, 5), 1.4758840488244815, 1e-14);
  close(tQuantile(0.025, 5), -2.5705818356363146, 1e-14);
  assert.equal(tQuantile(0.5, 7), 0);
  // df = 1 is the Cauchy distribution: CDF 1/2 + atan(t)/pi.
  close(tCdf(3, 1), 0.5 + Math.atan(3) / Math.PI, 1e-15);
  close(tCdf(-1.5, 4) + tCdf(1.5, 4), 1, 1e-15);
  assert.throws(() => tQuantile(1, 3), /p must be in \(0, 1\)/);
  assert.throws(() => tQuantile(0.975, 0), /degrees of freedom must be a positive number/);
});

test("meanCi: sample SD and t interval; n = 1 has none", () => {
  const r = meanCi([0.2, 0.3, 0.4]);
  assert.equal(r.n, 3);
  close(r.mean, 0.3);
  close(r.sd, 0.1);
  close(r.ci_low, 0.3 - (4.302652729749462 * 0.1) / Math.sqrt(3));
  close(r.ci_high, 0.3 + (4.302652729749462 * 0.1) / Math.sqrt(3));
  assert.deepEqual(meanCi([0.7]), { n: 1, mean: 0.7, sd: null, ci_low: null, ci_high: null });
  assert.throws(() => meanCi([]), /no values/);
});

function rec(backbone: EpochRecord["backbone"], arm: EpochRecord["arm"], trial: number, epoch: number, loss: number, rocAuc: number): EpochRecord {
  return {
    backbone, arm, trial, epoch, loss, roc_auc: rocAuc,
    output_bias_value: arm === "vanilla" ? 0.01 * trial : -2.1972245773362196,
    train_loss: epoch === 0 ? null : loss + 0.05,
    wall_s: 10 * epoch, images_per_s: epoch === 0 ? null : 100, seed: 7, dataset: "synthetic", backend: "cpu",
  };
}

// ImageNet: three paired trials. Scratch: vanilla has trial 0 only, positive_rate trials 0 and 1.
const RECORDS: EpochRecord[] = [
  rec("imagenet", "vanilla", 0, 0, 0.7, 0.5), rec("imagenet", "vanilla", 1, 0, 0.7, 0.5), rec("imagenet", "vanilla", 2, 0, 0.7, 0.5),
  rec("imagenet", "vanilla", 0, 1, 0.2, 0.8), rec("imagenet", "vanilla", 1, 1, 0.3, 0.7), rec("imagenet", "vanilla", 2, 1, 0.4, 0.9),
  rec("imagenet", "positive_rate", 0, 0, 0.33, 0.5), rec("imagenet", "positive_rate", 1, 0, 0.33, 0.5), rec("imagenet", "positive_rate", 2, 0, 0.33, 0.5),
  rec("imagenet", "positive_rate", 0, 1, 0.15, 0.85), rec("imagenet", "positive_rate", 1, 1, 0.25, 0.75), rec("imagenet", "positive_rate", 2, 1, 0.2, 0.8),
  rec("scratch", "vanilla", 0, 0, 0.69, 0.5),
  rec("scratch", "positive_rate", 0, 0, 0.33, 0.52), rec("scratch", "positive_rate", 1, 0, 0.35, 0.48),
];

test("summarize: per (backbone, arm, epoch) means and CIs, sorted; natural-scale intervals by hand", () => {
  const rows = summarizeWith([...RECORDS].reverse(), "loss", (r) => r.loss, "natural");
  assert.deepEqual(rows.map((r) => `${r.backbone}/${r.arm}/${r.epoch}/n=${r.n}`), [
    "imagenet/vanilla/0/n=3", "imagenet/vanilla/1/n=3", "imagenet/positive_rate/0/n=3", "imagenet/positive_rate/1/n=3",
    "scratch/vanilla/0/n=1", "scratch/positive_rate/0/n=2",
  ]);
  const h3 = 4.302652729749462 / Math.sqrt(3);
  const vanilla1 = rows[1];
  assert.equal(vanilla1.metric, "loss");
  assert.equal(vanilla1.scale, "natural");
  close(vanilla1.mean, 0.3);
  close(vanilla1.ci_low, 0.3 - 0.1 * h3);
  close(vanilla1.ci_high, 0.3 + 0.1 * h3);
  const positive1 = rows[3];
  close(positive1.mean, 0.2);
  close(positive1.sd, 0.05);
  close(positive1.ci_high, 0.2 + 0.05 * h3);
  // All three trials equal: zero-width interval.
  assert.equal(rows[0].sd, 0);
  assert.equal(rows[0].ci_low, rows[0].mean);
  // One trial: the interval is null, not invented.
  assert.equal(rows[4].ci_low, null);
  assert.equal(rows[4].ci_high, null);
  // Two trials 0.33, 0.35: sd = 0.01 * sqrt(2), half-width t(0.975, 1) * 0.01.
  close(rows[5].mean, 0.34);
  close(rows[5].ci_high, 0.34 + 12.706204736174694 * 0.01);
});

test("summarize: BCE on the log scale, ROC-AUC on the logit scale, by hand", () => {
  const loss = summarize(RECORDS, "loss");
  // Vanilla epoch 1: 0.2, 0.3, 0.4. The interval is exp(mean(log x) -+ t * sd(log x) / sqrt(3)); the mean stays arithmetic.
  const logs = [0.2, 0.3, 0.4].map(Math.log);
  const m = logs.reduce((a, b) => a + b) / 3;
  const sd = Math.sqrt(logs.reduce((a, b) => a + (b - m) ** 2, 0) / 2);
  const half = (4.302652729749462 * sd) / Math.sqrt(3);
  assert.equal(loss[1].scale, "log");
  close(loss[1].mean, 0.3);
  close(loss[1].ci_low, Math.exp(m - half));
  close(loss[1].ci_high, Math.exp(m + half));
  const auc = summarize(RECORDS, "roc_auc");
  const logit = (p: number): number => Math.log(p / (1 - p));
  const z = [0.8, 0.7, 0.9].map(logit);
  const zm = z.reduce((a, b) => a + b) / 3;
  const zsd = Math.sqrt(z.reduce((a, b) => a + (b - zm) ** 2, 0) / 2);
  assert.equal(auc[1].scale, "logit");
  close(auc[1].ci_high, 1 / (1 + Math.exp(-(zm + (4.302652729749462 * zsd) / Math.sqrt(3)))));
  // Two trials of ROC-AUC 0.52 and 0.48 on the natural scale would run to 0.5 -+ 0.254; on the logit scale they stay inside [0, 1].
  const scratch = auc.find((r) => r.backbone === "scratch" && r.arm === "positive_rate");
  assert.ok(scratch && scratch.ci_low !== null && scratch.ci_high !== null && scratch.ci_low > 0 && scratch.ci_high < 1);
});

test("summarize: null train_loss at epoch 0 gives no row; bad records are refused", () => {
  const rows = summarize(RECORDS, "train_loss");
  assert.deepEqual(rows.map((r) => `${r.backbone}/${r.arm}/${r.epoch}`), ["imagenet/vanilla/1", "imagenet/positive_rate/1"]);
  close(rows[0].mean, 0.35);
  const sig = summarizeWith(RECORDS, "sigmoid(output_bias_value)", (r) => 1 / (1 + Math.exp(-r.output_bias_value)), "logit");
  assert.equal(sig[0].metric, "sigmoid(output_bias_value)");
  close(sig[2].mean, 0.1); // positive_rate arm: sigmoid(log(0.1 / 0.9)) = 0.1
  assert.throws(() => summarize([...RECORDS, RECORDS[4]], "loss"), /duplicate record for imagenet\/vanilla trial 1 epoch 1/);
  assert.throws(() => summarize([{ ...RECORDS[0], roc_auc: NaN }], "roc_auc"), /roc_auc = NaN in imagenet\/vanilla trial 0 epoch 0 is not finite/);
});

test("pairedDifference: positive_rate minus vanilla matched on trial", () => {
  const rows = pairedDifference(RECORDS, "loss");
  assert.deepEqual(rows.map((r) => `${r.backbone}/${r.epoch}/n=${r.n}/unmatched=${r.unmatched}`), [
    "imagenet/0/n=3/unmatched=0", "imagenet/1/n=3/unmatched=0", "scratch/0/n=1/unmatched=1",
  ]);
  // Differences at epoch 1: -0.05, -0.05, -0.2: mean -0.1, sd sqrt(0.0075).
  close(rows[1].mean, -0.1);
  close(rows[1].sd, Math.sqrt(0.0075));
  close(rows[1].ci_low, -0.1 - (4.302652729749462 * Math.sqrt(0.0075)) / Math.sqrt(3));
  close(rows[1].ci_high, -0.1 + (4.302652729749462 * Math.sqrt(0.0075)) / Math.sqrt(3));
  close(rows[2].mean, 0.33 - 0.69);
  assert.equal(rows[2].ci_low, null);
  const auc = pairedDifference(RECORDS, "roc_auc");
  close(auc[1].mean, (0.05 + 0.05 - 0.1) / 3);
});

test("stepSummary: per step across trials", () => {
  const steps: StepRecord[] = [];
  const losses = { vanilla: [[0.9, 0.5], [0.7, 0.3]], positive_rate: [[0.35, 0.33], [0.31, 0.29]] } as const;
  for (const arm of ["vanilla", "positive_rate"] as const) {
    losses[arm].forEach((perStep, trial) => perStep.forEach((loss, i) => steps.push({ backbone: "scratch", arm, trial, epoch: 1, step: i + 1, loss })));
  }
  const rows = stepSummary(steps);
  assert.deepEqual(rows.map((r) => `${r.arm}/${r.step}`), ["vanilla/1", "vanilla/2", "positive_rate/1", "positive_rate/2"]);
  close(rows[0].mean, 0.8);
  // A step loss is a BCE: the interval is on the log scale, exp(mean(log x) + t * sd(log x) / sqrt(2)).
  const logs = [Math.log(0.9), Math.log(0.7)];
  close(rows[0].ci_high, Math.exp((logs[0] + logs[1]) / 2 + (12.706204736174694 * Math.abs(logs[0] - logs[1])) / Math.sqrt(2) / Math.sqrt(2)));
  assert.equal(rows[0].scale, "log");
  close(rows[3].mean, 0.31);
  assert.throws(() => stepSummary([...steps, steps[0]]), /duplicate record for scratch\/vanilla trial 0 epoch 1 step 1/);
});

test("resultsTable: the reference's columns plus run details, sorted, nulls kept", () => {
  const df = resultsTable([...RECORDS].reverse());
  assert.deepEqual(df.columns, [...RESULTS_COLUMNS]);
  assert.deepEqual(df.columns.slice(0, 6), ["loss", "roc_auc", "type", "n_epochs", "output_bias_value", "trial_idx"]);
  assert.deepEqual(df.shape, [RECORDS.length, RESULTS_COLUMNS.length]);
  const col = (name: string): unknown[] => df.column(name).values as unknown[];
  assert.deepEqual(col("type").slice(0, 7), ["vanilla", "vanilla", "vanilla", "vanilla", "vanilla", "vanilla", "positive_rate"]);
  assert.deepEqual(col("trial_idx").slice(0, 6), [0, 0, 1, 1, 2, 2]);
  assert.deepEqual(col("n_epochs").slice(0, 2), [0, 1]);
  assert.deepEqual(col("loss").slice(0, 2), [0.7, 0.2]);
  assert.deepEqual(col("train_loss").slice(0, 2), [null, 0.25]);
  assert.equal(col("pretrained")[0], true);
  assert.equal(col("pretrained")[RECORDS.length - 1], false);
  assert.deepEqual(resultsTable([]).shape, [0, RESULTS_COLUMNS.length]);
});

test("summaryTable: rows as a DataFrame", () => {
  const df = summaryTable(summarize(RECORDS, "roc_auc"));
  assert.deepEqual(df.columns, ["backbone", "arm", "epoch", "metric", "n", "mean", "sd", "ci_low", "ci_high", "scale"]);
  assert.equal(df.shape[0], 6);
  assert.deepEqual((df.column("ci_low").values as unknown[])[4], null);
  const paired = summaryTable(pairedDifference(RECORDS, "loss"));
  assert.deepEqual(paired.columns, ["backbone", "epoch", "metric", "unmatched", "n", "mean", "sd", "ci_low", "ci_high", "scale"]);
  assert.throws(() => summaryTable([]), /no rows to show/);
});
