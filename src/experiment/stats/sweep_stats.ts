// The imbalance sweep's numbers, per rate: what each rate's data holds (measured), the test BCE
// before any step against H(p) and log 2, the hockey stick measured (steps to catch up, excess
// loss), and the paired difference at the last epoch. Every prior arm is compared with vanilla:
// differences are arm - vanilla, matched on trial. Units are selected once over the whole sweep
// (selection.ts; the rate is part of each unit's condition), so diverged or incomplete units are
// left out of every number here and counted.
import { ARMS } from "../../config";
import type { Arm } from "../../config";
import { entropyNats } from "../../maths";
import type { EpochMetric, EpochRecord } from "../records";
import type { SweepResult } from "../sweep";
import { pairedDifference, summarize } from "./grouping";
import { catchUpPerTrial, catchUpSummary } from "./hockey_stick";
import type { Interval } from "./scales";
import { exclusionNote, selectUnits, Selection } from "./selection";

/** One rate's data, as measured when its store was created (null counts: nothing run yet). */
export interface SweepDataRow {
  target: number;
  /** Measured training positive rate (null: the store holds nothing yet). */
  p: number | null;
  train_images: number | null;
  train_positives: number | null;
  test_images: number | null;
  test_positives: number | null;
  test_p: number | null;
  h_p: number | null;
}

/** Per rate: images and positives of each split and the measured rates. */
export function sweepDataRows(sweep: SweepResult): SweepDataRow[] {
  return sweep.points.map(({ rate, result }) => ({
    target: rate, p: result.positiveRate,
    train_images: result.counts?.train.images ?? null, train_positives: result.counts?.train.positives ?? null,
    test_images: result.counts?.test.images ?? null, test_positives: result.counts?.test.positives ?? null,
    test_p: result.testPositiveRate, h_p: result.positiveRate === null ? null : entropyNats(result.positiveRate),
  }));
}

/** The units every sweep statistic includes, selected over all rates at once. */
export function sweepSelection(sweep: SweepResult): Selection {
  return selectUnits({ records: sweep.records, steps: sweep.steps, failed: sweep.failed, trials: sweep.config.trials });
}

/** Arms present in the sweep's records, in ARMS order. */
export function sweepArms(records: readonly { arm: Arm }[]): Arm[] {
  return ARMS.filter((arm) => records.some((r) => r.arm === arm));
}

/** The measured training rate of each target, from the store (never the target itself). */
export function measuredRate(sweep: SweepResult, target: number): number | null {
  return sweep.points.find((p) => p.rate === target)?.result.positiveRate ?? null;
}

/** What the selection left out at a rate ("" when nothing). */
export function rateExclusions(sweep: SweepResult, selection: Selection, target: number): string {
  return exclusionNote(selection.tallies, { backbone: sweep.config.backbones[0], target_positive_rate: target });
}

const ofRate = <T extends { target_positive_rate?: number }>(items: readonly T[], target: number): T[] => items.filter((r) => r.target_positive_rate === target);

/** Per rate and arm: test BCE before any step (mean and CI over trials, log scale), beside H(measured p) and log 2. */
export interface SweepStartRow extends Interval {
  target: number;
  p: number;
  arm: Arm;
  h_p: number;
}

export function sweepStartRows(sweep: SweepResult, selection = sweepSelection(sweep)): SweepStartRow[] {
  return sweep.points.flatMap(({ rate, result }) => {
    const p = result.positiveRate;
    if (p === null) return [];
    return summarize(ofRate(selection.records, rate).filter((r) => r.epoch === 0), "loss").map((row) => ({ ...row, target: rate, p, arm: row.arm, h_p: entropyNats(p) }));
  });
}

/** Per rate and prior arm: the hockey stick against vanilla, over paired trials. */
export interface SweepCatchUpRow {
  target: number;
  p: number;
  arm: Arm;
  pairs: number;
  caught_up: number;
  steps_to_catch_up: Interval | null;
  excess_loss: Interval;
}

export function sweepCatchUpRows(sweep: SweepResult, selection = sweepSelection(sweep)): SweepCatchUpRow[] {
  const priors = sweepArms(selection.steps).filter((a) => a !== "vanilla");
  return sweep.points.flatMap(({ rate, result }) => priors.flatMap((arm) => {
    const summary = catchUpSummary(catchUpPerTrial(ofRate(selection.steps, rate), { against: arm }))[0];
    if (summary === undefined || result.positiveRate === null) return [];
    return [{ target: rate, p: result.positiveRate, arm, pairs: summary.pairs, caught_up: summary.caught_up, steps_to_catch_up: summary.steps_to_catch_up, excess_loss: summary.excess_loss }];
  }));
}

/** Per rate and prior arm: the paired difference arm - vanilla of `metric` at the last epoch every included unit reached. */
export interface SweepDifferenceRow extends Interval {
  target: number;
  p: number;
  arm: Arm;
  epoch: number;
  metric: EpochMetric;
}

export function sweepDifferenceRows(sweep: SweepResult, metric: EpochMetric, selection = sweepSelection(sweep)): SweepDifferenceRow[] {
  const priors = sweepArms(selection.records).filter((a) => a !== "vanilla");
  return sweep.points.flatMap(({ rate, result }) => {
    const records: EpochRecord[] = ofRate(selection.records, rate);
    if (records.length === 0 || result.positiveRate === null) return [];
    const last = Math.max(...records.map((r) => r.epoch));
    return priors.flatMap((arm) => pairedDifference(records, metric, arm).filter((d) => d.epoch === last)
      .map((d) => ({ ...d, target: rate, p: result.positiveRate as number, arm, epoch: last, metric })));
  });
}
