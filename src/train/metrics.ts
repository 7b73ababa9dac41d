// Test-set metrics of the binary head, matching the reference's scikit-learn calls bit for bit
// where that is possible (tools/sklearn_reference.py and test/metrics.test.ts check it).
//
// Which loss the experiment reports: `loss` in an EpochRecord is `logLoss` on the sigmoid
// probabilities, like the reference's `sklearn.metrics.log_loss(labels, probs)`. `bceFromLogits`
// is the same quantity computed from logits without clipping; it is kept for diagnostics
// (the two differ only when a probability saturates to 0 or 1 and clipping kicks in).

/** float64 machine epsilon, 2^-52: what scikit-learn clips float64 probabilities to. */
export const FLOAT64_EPS = Number.EPSILON;
/** float32 machine epsilon, 2^-23: what scikit-learn clips float32 probabilities to. */
export const FLOAT32_EPS = 2 ** -23;

/** Sum with Neumaier compensation, so a mean over 10,000 test images is accurate to ~1 ulp. */
function accurateSum(values: ArrayLike<number>): number {
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const t = sum + v;
    compensation += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return sum + compensation;
}

/** Checks shared by every metric: equal non-zero lengths, labels exactly 0 or 1, no NaN. */
function checkInputs(fn: string, labels: ArrayLike<number>, values: ArrayLike<number>, valuesName: string): void {
  if (labels.length !== values.length) {
    throw new Error(`${fn}: labels (n=${labels.length}) and ${valuesName} (n=${values.length}) differ in length`);
  }
  if (labels.length === 0) throw new Error(`${fn}: no samples (n=0)`);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y !== 0 && y !== 1) throw new Error(`${fn}: label ${y} at index ${i} is not 0 or 1`);
    if (Number.isNaN(values[i])) throw new Error(`${fn}: ${valuesName}[${i}] is NaN`);
  }
}

/**
 * Area under the ROC curve, exact with ties: the Mann-Whitney U statistic with tied
 * (positive, negative) pairs counting one half, divided by n_pos * n_neg. This equals the
 * trapezoidal area scikit-learn's roc_auc_score computes. U is accumulated in integers and
 * halves, so the only rounding is the final division. +-Infinity scores rank normally.
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  checkInputs("rocAuc", labels, scores, "scores");
  const n = labels.length;
  let nPos = 0;
  for (let i = 0; i < n; i++) nPos += labels[i];
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) {
    throw new Error(`ROC-AUC is undefined when all labels are ${nPos === 0 ? 0 : 1} (n=${n})`);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  // Walk groups of equal scores in ascending order: each positive in a group beats every
  // negative seen in earlier groups and ties with the negatives of its own group.
  let twiceU = 0;
  let negativesBelow = 0;
  for (let start = 0; start < n; ) {
    let end = start;
    let pos = 0;
    let neg = 0;
    while (end < n && scores[order[end]] === scores[order[start]]) {
      if (labels[order[end]] === 1) pos++;
      else neg++;
      end++;
    }
    twiceU += 2 * pos * negativesBelow + pos * neg;
    negativesBelow += neg;
    start = end;
  }
  return twiceU / (2 * nPos * nNeg);
}

/**
 * Mean binary log loss of probabilities of the positive class, as sklearn.metrics.log_loss:
 * scikit-learn builds the two columns [1 - p, p], clips each to [eps, 1 - eps] and averages
 * -log of the true class's column. Its eps: 1e-15 before 1.2; from 1.2 the default "auto" means
 * np.finfo(y_pred.dtype).eps; the argument was deprecated in 1.3 and removed in 1.5, so current
 * versions (checked against 1.9.1's source) always clip at the dtype's machine epsilon. For
 * float64 input that is 2^-52 (the default here); pass FLOAT32_EPS to mimic a float32 array
 * (the float32 arithmetic itself is not reproduced). Unlike scikit-learn, a label vector with
 * one class is accepted (equivalent to sklearn's `labels=[0, 1]`): the loss is still defined.
 */
export function logLoss(labels: ArrayLike<number>, probs: ArrayLike<number>, eps: number = FLOAT64_EPS): number {
  checkInputs("logLoss", labels, probs, "probs");
  if (!(eps >= 0 && eps < 0.5)) throw new Error(`logLoss: eps must be in [0, 0.5), got ${eps}`);
  const perSample = new Float64Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const p = probs[i];
    if (p < 0 || p > 1) throw new Error(`logLoss: probs[${i}] = ${p} is outside [0, 1]`);
    const column = labels[i] === 1 ? p : 1 - p;
    perSample[i] = -Math.log(Math.min(Math.max(column, eps), 1 - eps));
  }
  return accurateSum(perSample) / labels.length;
}

/**
 * Mean binary cross-entropy computed from logits z, stable for any |z|:
 * max(z, 0) - z*y + log1p(exp(-|z|)). No clipping, so a confidently wrong prediction costs
 * its true (large) loss instead of -log(eps).
 */
export function bceFromLogits(labels: ArrayLike<number>, logits: ArrayLike<number>): number {
  checkInputs("bceFromLogits", labels, logits, "logits");
  const perSample = new Float64Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const z = logits[i];
    if (!Number.isFinite(z)) throw new Error(`bceFromLogits: logits[${i}] = ${z} is not finite`);
    perSample[i] = Math.max(z, 0) - z * labels[i] + Math.log1p(Math.exp(-Math.abs(z)));
  }
  return accurateSum(perSample) / labels.length;
}

/**
 * Expected calibration error of probabilities of the positive class, with `bins` equal-width bins
 * on the predicted probability: ECE = sum over non-empty bins b of (n_b / n) * |mean label in b -
 * mean probability in b|, i.e. the bin means of sklearn.calibration.calibration_curve(strategy=
 * "uniform") weighted by bin count. Bin edges are k * (1 / bins) as numpy.linspace makes them, and a
 * probability on an edge belongs to the bin below it (numpy.searchsorted, side "left", as scikit-
 * learn assigns bins): bin 0 is [0, 1/bins], bin k is (k/bins, (k+1)/bins].
 */
export function expectedCalibrationError(labels: ArrayLike<number>, probs: ArrayLike<number>, bins: number): number {
  checkInputs("expectedCalibrationError", labels, probs, "probs");
  if (!(Number.isInteger(bins) && bins >= 1)) throw new Error(`expectedCalibrationError: bins must be a positive integer, got ${bins}`);
  const step = 1 / bins;
  const count = new Float64Array(bins);
  const probSum = new Float64Array(bins);
  const labelSum = new Float64Array(bins);
  for (let i = 0; i < labels.length; i++) {
    const p = probs[i];
    if (p < 0 || p > 1) throw new Error(`expectedCalibrationError: probs[${i}] = ${p} is outside [0, 1]`);
    // Number of inner edges k * step (k = 1..bins-1) strictly below p.
    let b = Math.min(bins - 1, Math.max(0, Math.ceil(p / step) - 1));
    while (b > 0 && !((b * step) < p)) b--;
    while (b < bins - 1 && (b + 1) * step < p) b++;
    count[b]++;
    probSum[b] += p;
    labelSum[b] += labels[i];
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b] > 0) ece += (count[b] / labels.length) * Math.abs(labelSum[b] / count[b] - probSum[b] / count[b]);
  return ece;
}

/** Mean and population standard deviation (n denominator) of the logits, in float64. */
export function logitMoments(logits: ArrayLike<number>): { mean: number; sd: number } {
  if (logits.length === 0) throw new Error("logitMoments: no logits");
  const mean = accurateSum(logits) / logits.length;
  const squares = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) squares[i] = (logits[i] - mean) ** 2;
  return { mean, sd: Math.sqrt(accurateSum(squares) / logits.length) };
}

/** Mean in float64 with compensated summation: of probabilities, the predicted positive rate; of 0/1 labels, the measured one. */
export function meanOf(values: ArrayLike<number>): number {
  if (values.length === 0) throw new Error("meanOf: no values");
  return accurateSum(values) / values.length;
}
