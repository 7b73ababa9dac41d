// The hockey stick, measured. Both arms of a trial see the same batches in the same order, so
// batch-to-batch noise in the per-step training loss is shared and cancels between them. Per trial,
// from the first epoch's step losses (StepRecord):
//   steps to catch up: the number of optimizer steps before the vanilla arm's smoothed loss comes
//     to at most (1 + tolerance) times the positive-rate arm's smoothed loss and stays there for
//     the rest of the epoch. Both are smoothed by the same exponential moving average (span S,
//     alpha = 2 / (S + 1), started at the first step's loss). Step k's loss is measured on batch k
//     before its update, after k - 1 steps: caught up from step k means k - 1 steps, i.e.
//     (k - 1) x batch size images seen. Null when the vanilla arm is still behind at the last step.
//   excess loss: the area between the raw (unsmoothed) step-loss curves over the first epoch, the
//     sum over steps of vanilla - positive rate, in nats x steps. Each step's loss is a mean over
//     its batch, so excess loss x batch size is the extra loss summed over the images seen.
import { ANALYSIS } from "../../config";
import type { Arm } from "../../config";
import { Condition, conditionKey, conditionOf, StepRecord } from "../records";
import { groupBy } from "./grouping";
import { Interval, meanCiOnScale } from "./scales";

export interface CatchUpOptions {
  /** EMA span in steps (default ANALYSIS.catchUpEmaSpan). */
  span?: number;
  /** Relative tolerance (default ANALYSIS.catchUpTolerance). */
  tolerance?: number;
  /** The arm vanilla is measured against (default positive_rate). */
  against?: Arm;
}

/** One trial's pair of first-epoch curves, measured. */
export interface CatchUpRow extends Condition {
  trial: number;
  /** Steps in the first epoch. */
  steps: number;
  steps_to_catch_up: number | null;
  excess_loss: number;
}

/** Per condition, over the trials whose both arms hold first-epoch steps. */
export interface CatchUpSummaryRow extends Condition {
  pairs: number;
  /** Pairs whose vanilla arm caught up within the first epoch (the others have no steps_to_catch_up). */
  caught_up: number;
  steps_to_catch_up: Interval | null;
  excess_loss: Interval;
}

/** Exponential moving average, s_1 = x_1, s_t = alpha x_t + (1 - alpha) s_(t-1), alpha = 2 / (span + 1) (pandas ewm(span, adjust=False)). */
export function emaSeries(values: readonly number[], span: number): number[] {
  if (!(span >= 1)) throw new Error(`emaSeries: span must be at least 1, got ${span}`);
  const alpha = 2 / (span + 1);
  const out: number[] = [];
  for (const v of values) out.push(out.length === 0 ? v : alpha * v + (1 - alpha) * out[out.length - 1]);
  return out;
}

/** Steps taken before the smoothed vanilla curve is within tolerance of the smoothed positive-rate curve for good; null if never. */
export function stepsToCatchUp(vanilla: readonly number[], positiveRate: readonly number[], span: number, tolerance: number): number | null {
  if (vanilla.length !== positiveRate.length || vanilla.length === 0) throw new Error(`stepsToCatchUp: curves of ${vanilla.length} and ${positiveRate.length} steps`);
  const v = emaSeries(vanilla, span);
  const p = emaSeries(positiveRate, span);
  let from: number | null = null;
  for (let i = v.length - 1; i >= 0 && v[i] <= (1 + tolerance) * p[i]; i--) from = i;
  return from;
}

/** Sum over steps of vanilla - positive rate (raw losses), nats x steps. */
export function excessLoss(vanilla: readonly number[], positiveRate: readonly number[]): number {
  if (vanilla.length !== positiveRate.length) throw new Error(`excessLoss: curves of ${vanilla.length} and ${positiveRate.length} steps`);
  return vanilla.reduce((sum, v, i) => sum + (v - positiveRate[i]), 0);
}

/** Per (condition, trial) with both arms' first-epoch steps (vanilla and `options.against`): steps to catch up and excess loss. */
export function catchUpPerTrial(steps: readonly StepRecord[], options: CatchUpOptions = {}): CatchUpRow[] {
  const span = options.span ?? ANALYSIS.catchUpEmaSpan;
  const tolerance = options.tolerance ?? ANALYSIS.catchUpTolerance;
  const rows: CatchUpRow[] = [];
  for (const [, group] of groupBy(steps.filter((s) => s.epoch === 1), (s) => [...conditionKey(s), s.trial])) {
    const curve = (arm: Arm): number[] => group.filter((s) => s.arm === arm).sort((a, b) => a.step - b.step).map((s) => s.loss);
    const vanilla = curve("vanilla");
    const positive = curve(options.against ?? "positive_rate");
    if (vanilla.length === 0 || positive.length === 0) continue;
    const where = `${conditionKey(group[0]).join("/")} trial ${group[0].trial}`;
    if (vanilla.length !== positive.length) throw new Error(`catchUpPerTrial: ${where}: the arms hold ${vanilla.length} and ${positive.length} first-epoch steps (the same data should give the same count)`);
    for (const loss of [...vanilla, ...positive]) if (!Number.isFinite(loss)) throw new Error(`catchUpPerTrial: ${where}: a step loss is ${loss}`);
    rows.push({ ...conditionOf(group[0]), trial: group[0].trial, steps: vanilla.length,
      steps_to_catch_up: stepsToCatchUp(vanilla, positive, span, tolerance), excess_loss: excessLoss(vanilla, positive) });
  }
  return rows;
}

/** Mean and 95% CI per condition, on the natural scale (both are paired quantities): steps over the pairs that caught up, excess loss over all. */
export function catchUpSummary(rows: readonly CatchUpRow[]): CatchUpSummaryRow[] {
  return groupBy(rows, (r) => conditionKey(r)).map(([, group]) => {
    const caught = group.flatMap((r) => (r.steps_to_catch_up === null ? [] : [r.steps_to_catch_up]));
    return {
      ...conditionOf(group[0]), pairs: group.length, caught_up: caught.length,
      steps_to_catch_up: caught.length > 0 ? meanCiOnScale(caught, "natural") : null,
      excess_loss: meanCiOnScale(group.map((r) => r.excess_loss), "natural"),
    };
  });
}
