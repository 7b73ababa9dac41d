// The hockey stick, measured: the EMA, steps to catch up and excess loss by hand, pairing by trial,
// and the summary over trials.
import { test } from "node:test";
import assert from "node:assert/strict";
import { catchUpPerTrial, catchUpSummary, emaSeries, excessLoss, stepsToCatchUp } from "../src/experiment/stats/hockey_stick";
import type { StepRecord } from "../src/experiment/records";
import { ANALYSIS } from "../src/config";

const close = (a: number | null | undefined, b: number, tol = 1e-12): void => assert.ok(a != null && Math.abs(a - b) <= tol, `expected ${b}, got ${a}`);

test("emaSeries: s1 = x1, then alpha x + (1 - alpha) s with alpha = 2 / (span + 1)", () => {
  assert.deepEqual(emaSeries([4, 0, 2, 2], 3), [4, 2, 2, 2]); // alpha 0.5
  assert.deepEqual(emaSeries([1, 5, 3], 1), [1, 5, 3]); // alpha 1: no smoothing
  const s = emaSeries([1, 0, 0], 10);
  close(s[1], 9 / 11);
  close(s[2], (9 / 11) ** 2);
  assert.throws(() => emaSeries([1], 0.5), /span must be at least 1/);
});

test("stepsToCatchUp: the first step from which vanilla stays within the tolerance; null when it never does", () => {
  const p = [0.33, 0.33, 0.33, 0.33, 0.33, 0.33];
  // Unsmoothed (span 1): within 5% (<= 0.3465) from index 3 on, and index 1's dip does not count because index 2 is above.
  assert.equal(stepsToCatchUp([0.7, 0.34, 0.5, 0.34, 0.3, 0.33], p, 1, 0.05), 3);
  assert.equal(stepsToCatchUp([0.33, 0.3, 0.3, 0.33, 0.34, 0.3], p, 1, 0.05), 0, "caught up from the first step");
  assert.equal(stepsToCatchUp([0.7, 0.6, 0.5, 0.4, 0.36, 0.35], p, 1, 0.05), null, "still 6% above at the last step");
  // Overtaking counts as caught up (one-sided tolerance).
  assert.equal(stepsToCatchUp([0.7, 0.1, 0.1, 0.1, 0.1, 0.1], p, 1, 0.05), 1);
  // Smoothing delays the catch-up: span 3 (alpha 0.5) on 0.7 then 0.33s gives 0.7, 0.515, 0.4225, 0.37625, 0.353125, 0.34156: <= 0.3465 from index 5.
  assert.equal(stepsToCatchUp([0.7, 0.33, 0.33, 0.33, 0.33, 0.33], p, 3, 0.05), 5);
  assert.throws(() => stepsToCatchUp([0.5], [0.3, 0.3], 1, 0.05), /curves of 1 and 2 steps/);
});

test("excessLoss: the sum of raw differences, nats x steps", () => {
  close(excessLoss([0.7, 0.5, 0.3], [0.33, 0.3, 0.31]), 0.37 + 0.2 - 0.01);
  assert.throws(() => excessLoss([0.5], []), /curves of 1 and 0 steps/);
});

function steps(curves: Record<string, Record<number, number[]>>, backbone: StepRecord["backbone"] = "scratch"): StepRecord[] {
  const out: StepRecord[] = [];
  for (const arm of ["vanilla", "positive_rate"] as const) {
    for (const [trial, losses] of Object.entries(curves[arm] ?? {})) losses.forEach((loss, i) => out.push({ backbone, arm, trial: Number(trial), epoch: 1, step: i + 1, loss }));
  }
  return out;
}

test("catchUpPerTrial and catchUpSummary: pairs by trial, steps over the pairs that caught up, Student t on the natural scale", () => {
  const flat = Array(12).fill(0.33);
  const late = [0.7, 0.6, 0.5, 0.45, 0.4, 0.37, 0.35, 0.34, 0.33, 0.33, 0.33, 0.33];
  const never = Array(12).fill(0.6);
  const records = steps({ vanilla: { 0: late, 1: [0.7, 0.5, ...Array(10).fill(0.33)], 2: never, 3: late }, positive_rate: { 0: flat, 1: flat, 2: flat } });
  const rows = catchUpPerTrial(records, { span: 1, tolerance: 0.05 });
  assert.deepEqual(rows.map((r) => [r.trial, r.steps, r.steps_to_catch_up]), [[0, 12, 7], [1, 12, 2], [2, 12, null]], "trial 3 has no positive-rate arm: no pair");
  close(rows[0].excess_loss, late.reduce((s, v) => s + v - 0.33, 0));
  const [summary] = catchUpSummary(rows);
  assert.deepEqual([summary.backbone, summary.pairs, summary.caught_up], ["scratch", 3, 2]);
  close(summary.steps_to_catch_up?.mean, 4.5);
  // Two pairs: half-width t(0.975, 1) * sd / sqrt(2) = 12.7062 * |7 - 2| / 2.
  close(summary.steps_to_catch_up?.ci_high, 4.5 + (12.706204736174694 * 5) / 2, 1e-9);
  assert.equal(summary.excess_loss.n, 3);
  assert.equal(summary.excess_loss.scale, "natural");
  // The defaults are the stated ones.
  assert.equal(catchUpPerTrial(records)[0].steps_to_catch_up, stepsToCatchUp(late, flat, ANALYSIS.catchUpEmaSpan, ANALYSIS.catchUpTolerance));
  const broken = steps({ vanilla: { 0: [0.7, 0.5] }, positive_rate: { 0: [0.33] } });
  assert.throws(() => catchUpPerTrial(broken), /scratch trial 0: the arms hold 2 and 1 first-epoch steps/);
});
