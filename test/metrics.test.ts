import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { rocAuc, logLoss, bceFromLogits, FLOAT32_EPS, expectedCalibrationError, logitMoments, meanOf } from "../src/train/metrics";
import { crossEntropyNats, entropyNats } from "../src/maths";
import { makeRng } from "../src/rng";

const ROOT = path.resolve(__dirname, "..");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

test("rocAuc: hand-computed cases", () => {
  // Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered correctly.
  assert.equal(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.75);
  assert.equal(rocAuc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]), 0.5);
  assert.equal(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), 1);
  assert.equal(rocAuc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]), 0);
  // One tie between the positive 0.3 and a negative 0.3: (1 + 0.5 + 1 + 1 + 1 + 1) / 6.
  assert.equal(rocAuc([0, 0, 0, 1, 1], [0.1, 0.3, 0.2, 0.3, 0.9]), 5.5 / 6);
  assert.equal(rocAuc(new Float32Array([0, 1]), new Float64Array([-Infinity, Infinity])), 1);
});

test("rocAuc: bad input gives clear errors", () => {
  assert.throws(() => rocAuc([0, 0, 0], [0.1, 0.2, 0.3]), /ROC-AUC is undefined when all labels are 0 \(n=3\)/);
  assert.throws(() => rocAuc([1, 1], [0.1, 0.2]), /ROC-AUC is undefined when all labels are 1 \(n=2\)/);
  assert.throws(() => rocAuc([0, 1], [0.1, NaN]), /scores\[1\] is NaN/);
  assert.throws(() => rocAuc([0, 2], [0.1, 0.2]), /label 2 at index 1 is not 0 or 1/);
  assert.throws(() => rocAuc([0, 1, 1], [0.1, 0.2]), /differ in length/);
  assert.throws(() => rocAuc([], []), /no samples/);
});

test("logLoss: hand-computed cases and sklearn's float64 clipping", () => {
  assert.ok(Math.abs(logLoss([0, 1], [0.2, 0.7]) - (-Math.log(0.8) - Math.log(0.7)) / 2) < 1e-16);
  // scikit-learn's docstring example (spam = positive class): 0.21616...
  assert.ok(Math.abs(logLoss([1, 0, 0, 1], [0.9, 0.1, 0.2, 0.65]) - 0.21616) < 5e-6);
  // p = 0 for a positive and p = 1 for a negative are clipped to eps = 2^-52: loss 52 ln 2.
  assert.ok(Math.abs(logLoss([1], [0]) - 52 * Math.LN2) < 1e-12);
  assert.ok(Math.abs(logLoss([0], [1]) - 52 * Math.LN2) < 1e-12);
  assert.ok(Math.abs(logLoss([1, 0], [0, 1], FLOAT32_EPS) - 23 * Math.LN2) < 1e-12);
  assert.equal(logLoss([1, 0], [1, 0]), -Math.log(1 - Number.EPSILON));
  assert.throws(() => logLoss([0, 1], [0.5, 1.5]), /probs\[1\] = 1.5 is outside \[0, 1\]/);
  assert.throws(() => logLoss([0, 1], [NaN, 0.5]), /probs\[0\] is NaN/);
  assert.throws(() => logLoss([0, 1], [0.5, 0.5], 0.7), /eps must be in/);
});

test("bceFromLogits: agrees with logLoss of sigmoid, stays finite for huge logits", () => {
  const labels = [0, 1, 1, 0, 1];
  const logits = [-3, 2.5, -0.7, 0.1, 8];
  assert.ok(Math.abs(bceFromLogits(labels, logits) - logLoss(labels, logits.map(sigmoid))) < 1e-14);
  // A confidently wrong logit of 1000 costs 1000 nats; clipping would cap it at 52 ln 2.
  assert.equal(bceFromLogits([0], [1000]), 1000);
  assert.equal(bceFromLogits([0], [-1000]), 0);
  assert.throws(() => bceFromLogits([0], [Infinity]), /logits\[0\] = Infinity is not finite/);
});

test("entropyNats: H(p) in nats", () => {
  assert.ok(Math.abs(entropyNats(0.1) - 0.3250829733914482) < 1e-15);
  assert.equal(entropyNats(0.5), Math.LN2);
  assert.equal(entropyNats(0), 0);
  assert.equal(entropyNats(1), 0);
  assert.throws(() => entropyNats(1.2), /p must be in \[0, 1\]/);
});

interface Case {
  labels: number[];
  scores: number[];
  probs: number[];
}

/** Random cases with many ties (scores on a coarse grid) and probabilities at and beyond the clip. */
function randomCases(count: number): Case[] {
  const rng = makeRng("metrics.test", "sklearn");
  const cases: Case[] = [];
  for (let c = 0; c < count; c++) {
    const n = 2 + rng.int(c < 4 ? 10 : 400);
    const positiveRate = 0.05 + 0.5 * rng.next();
    const labels = Array.from({ length: n }, () => (rng.next() < positiveRate ? 1 : 0));
    labels[0] = 0;
    labels[1] = 1;
    const levels = [1, 2, 3, 5, 10, 50, 1000, 0][c % 8]; // 0: continuous scores
    const scores = labels.map((y) => {
      const s = rng.normal() + 0.8 * y;
      return levels === 0 ? s : Math.round(s * levels) / levels;
    });
    const probs = scores.map((s) => {
      const u = rng.next();
      if (u < 0.03) return 0;
      if (u < 0.06) return 1;
      if (u < 0.08) return 1e-20; // below eps: clipped
      if (u < 0.1) return 1 - 1e-16; // 1 - p is below eps: clipped
      return sigmoid(3 * s);
    });
    cases.push({ labels, scores, probs });
  }
  return cases;
}

test(
  "rocAuc and logLoss match scikit-learn on random cases with ties",
  { skip: existsSync(PYTHON) ? false : `skipped: ${PYTHON} is missing (make setup creates it)` },
  () => {
    const cases = randomCases(24);
    // Two more cases for calibration: every probability on a bin edge k/15 (numpy's linspace
    // computes the edges as k * (1/15), and so does expectedCalibrationError), and one bin only.
    const edges = Array.from({ length: 16 }, (_, k) => k * (1 / 15));
    cases.push({ labels: edges.map((_, k) => k % 2), scores: edges, probs: edges });
    cases.push({ labels: [0, 0, 1, 0, 0], scores: [1, 2, 3, 4, 5], probs: [0.3, 0.3, 0.3, 0.3, 0.3] });
    const stdout = execFileSync(PYTHON, [path.join(ROOT, "tools", "sklearn_reference.py")], {
      input: JSON.stringify({ cases, ece_bins: 15 }),
      encoding: "utf8",
    });
    const answers = JSON.parse(stdout) as Array<{ roc_auc: number | null; log_loss: number; ece: number }>;
    assert.equal(answers.length, cases.length);
    cases.forEach((c, i) => {
      const auc = rocAuc(c.labels, c.scores);
      const loss = logLoss(c.labels, c.probs);
      assert.ok(answers[i].roc_auc !== null);
      assert.ok(Math.abs(auc - (answers[i].roc_auc as number)) < 1e-12, `case ${i}: rocAuc ${auc} vs sklearn ${answers[i].roc_auc}`);
      assert.ok(Math.abs(loss - answers[i].log_loss) < 1e-12, `case ${i}: logLoss ${loss} vs sklearn ${answers[i].log_loss}`);
      const ece = expectedCalibrationError(c.labels, c.probs, 15);
      assert.ok(Math.abs(ece - answers[i].ece) < 1e-12, `case ${i}: ECE ${ece} vs sklearn's bins ${answers[i].ece}`);
    });
    // The one-bin case: |1/5 - 0.3| = 0.1.
    assert.ok(Math.abs(answers[answers.length - 1].ece - 0.1) < 1e-15);
  },
);

test("expectedCalibrationError: hand-computed cases, bins, bad input", () => {
  // 0.1 | 0.2 | 0.9 | 0.95 fall in four different bins of width 1/15: (0.1 + 0.8 + 0.1 + 0.95) / 4.
  assert.ok(Math.abs(expectedCalibrationError([0, 1, 1, 0], [0.1, 0.2, 0.9, 0.95], 15) - 0.4875) < 1e-15);
  // One bin: |mean label - mean probability| = |0.5 - 0.35|.
  assert.ok(Math.abs(expectedCalibrationError([0, 1], [0.2, 0.5], 1) - 0.15) < 1e-15);
  // Two bins [0, 0.5] and (0.5, 1]: 0.5 belongs to the lower bin (scikit-learn's binning).
  assert.ok(Math.abs(expectedCalibrationError([1, 0], [0.5, 0.75], 2) - (0.5 * 0.5 + 0.5 * 0.75)) < 1e-15);
  assert.equal(expectedCalibrationError([0, 1], [0, 1], 15), 0);
  assert.throws(() => expectedCalibrationError([0, 1], [0.5, 1.5], 15), /probs\[1\] = 1.5 is outside \[0, 1\]/);
  assert.throws(() => expectedCalibrationError([0, 1], [0.5, 0.5], 0), /bins must be a positive integer/);
});

test("logitMoments and meanOf: mean and population SD in float64", () => {
  const m = logitMoments([-1, 1, 3]);
  assert.equal(m.mean, 1);
  assert.ok(Math.abs(m.sd - Math.sqrt(8 / 3)) < 1e-15);
  assert.deepEqual(logitMoments(new Float32Array([-2.5, -2.5])), { mean: -2.5, sd: 0 });
  assert.equal(meanOf([0, 1, 1, 0]), 0.5);
  assert.throws(() => logitMoments([]), /no logits/);
});

test("crossEntropyNats: H(p) at q = p, the constant prediction's loss elsewhere", () => {
  assert.equal(crossEntropyNats(0.1, 0.1), entropyNats(0.1));
  assert.ok(Math.abs(crossEntropyNats(0.25, 0.1) - (-0.25 * Math.log(0.1) - 0.75 * Math.log(0.9))) < 1e-15);
  assert.equal(crossEntropyNats(0, 0.5), Math.LN2);
  assert.throws(() => crossEntropyNats(0.5, 1), /q must be in \(0, 1\)/);
});
