// Records grouped for statistics: per (condition, arm, epoch) means over trials, paired
// differences between the arms of one trial, and per-step summaries. The condition is what units
// are compared within (records.ts: the backbone, and any later axis of the grid). Plain float64
// rather than danfojs groupby: nulls (epoch 0 has no train loss) and n = 1 (no interval) stay
// explicit, and tests can check results exactly. Which units to include is decided before
// (selection.ts): these functions summarize every record they are given.
import { ARMS, BACKBONES } from "../../config";
import type { Arm, Backbone } from "../../config";
import { Condition, conditionKey, conditionOf, EpochMetric, EpochRecord, metricOf, StepRecord } from "../records";
import { differenceBound, Interval, meanCiOnScale, METRIC_SCALE, Scale } from "./scales";

export interface SummaryRow extends Condition, Interval {
  arm: Arm;
  epoch: number;
  /** Which quantity was summarized, e.g. "loss" or "sigmoid(output_bias_value)". */
  metric: string;
}

export interface PairedRow extends Condition, Interval {
  epoch: number;
  metric: string;
  /** Trials present in only one arm at this epoch, left out of the difference. */
  unmatched: number;
}

export interface StepSummaryRow extends Condition, Interval {
  arm: Arm;
  epoch: number;
  step: number;
}

/** Sort order of rows: backbones and arms as listed in config, then numbers ascending. */
export function compareKeys(a: readonly (string | number)[], b: readonly (string | number)[]): number {
  const rank = (v: string | number): number =>
    typeof v === "number" ? v : Math.max(BACKBONES.indexOf(v as Backbone), ARMS.indexOf(v as Arm));
  for (let i = 0; i < a.length; i++) {
    const d = rank(a[i]) - rank(b[i]);
    if (d !== 0) return d;
  }
  return 0;
}

function describe(r: EpochRecord | StepRecord): string {
  const step = "step" in r ? ` step ${r.step}` : "";
  return `${conditionKey(r).join("/")}/${r.arm} trial ${r.trial} epoch ${r.epoch}${step}`;
}

/** A record appearing twice (e.g. a resumed run appending again) would be counted twice: refuse. */
export function checkUnique(records: readonly (EpochRecord | StepRecord)[], fn: string): void {
  const seen = new Set<string>();
  for (const r of records) {
    const key = describe(r);
    if (seen.has(key)) throw new Error(`${fn}: duplicate record for ${key}`);
    seen.add(key);
  }
}

/** Groups items by key, keeping the key parts for the output rows, sorted by key. */
export function groupBy<T, K extends readonly (string | number)[]>(items: readonly T[], keyOf: (item: T) => K): Array<[K, T[]]> {
  const groups = new Map<string, [K, T[]]>();
  for (const item of items) {
    const key = keyOf(item);
    const id = key.join("\u0000");
    const group = groups.get(id);
    if (group) group[1].push(item);
    else groups.set(id, [key, [item]]);
  }
  return [...groups.values()].sort((a, b) => compareKeys(a[0], b[0]));
}

function metricValue(fn: string, r: EpochRecord, metric: string, value: number | null): number | null {
  if (value !== null && !Number.isFinite(value)) throw new Error(`${fn}: ${metric} = ${value} in ${describe(r)} is not finite`);
  return value;
}

/**
 * Mean and 95% CI across trials of any per-record quantity, per (condition, arm, epoch), the
 * interval computed on `scale` (scales.ts). Records whose value is null are skipped (n counts the
 * others); groups with no value give no row.
 */
export function summarizeWith(
  records: readonly EpochRecord[],
  metric: string,
  valueOf: (r: EpochRecord) => number | null,
  scale: Scale,
): SummaryRow[] {
  checkUnique(records, "summarize");
  const rows: SummaryRow[] = [];
  for (const [, group] of groupBy(records, (r) => [...conditionKey(r), r.arm, r.epoch])) {
    const values: number[] = [];
    for (const r of group) {
      const v = metricValue("summarize", r, metric, valueOf(r));
      if (v !== null) values.push(v);
    }
    if (values.length > 0) rows.push({ ...conditionOf(group[0]), arm: group[0].arm, epoch: group[0].epoch, metric, ...meanCiOnScale(values, scale) });
  }
  return rows;
}

/** Mean and 95% CI across trials of one metric, per (condition, arm, epoch), on the metric's scale (METRIC_SCALE). */
export function summarize(records: readonly EpochRecord[], metric: EpochMetric): SummaryRow[] {
  return summarizeWith(records, metric, (r) => metricOf(r, metric), METRIC_SCALE[metric]);
}

/**
 * Per (condition, epoch): the per-trial difference `arm` (default positive_rate) minus vanilla
 * (pairs matched on trial, which share data order and seeds), with its mean and 95% CI on the
 * natural scale, cut to [-1, 1] for [0, 1] metrics (differenceBound). Pairs with a null value are
 * left out; epochs with no complete pair give no row.
 */
export function pairedDifference(records: readonly EpochRecord[], metric: EpochMetric, arm: Arm = "positive_rate"): PairedRow[] {
  checkUnique(records, "pairedDifference");
  const rows: PairedRow[] = [];
  for (const [, group] of groupBy(records, (r) => [...conditionKey(r), r.epoch])) {
    const byTrial = new Map<number, Partial<Record<Arm, number | null>>>();
    for (const r of group.filter((x) => x.arm === "vanilla" || x.arm === arm)) {
      const arms = byTrial.get(r.trial) ?? {};
      arms[r.arm] = metricValue("pairedDifference", r, metric, metricOf(r, metric));
      byTrial.set(r.trial, arms);
    }
    const differences: number[] = [];
    let unmatched = 0;
    for (const trial of [...byTrial.keys()].sort((a, b) => a - b)) {
      const arms = byTrial.get(trial) as Partial<Record<Arm, number | null>>;
      const other = arms[arm];
      if (arms.vanilla === undefined || other === undefined) unmatched++;
      else if (arms.vanilla !== null && other !== null) differences.push(other - arms.vanilla);
    }
    if (differences.length === 0) continue;
    const ci = meanCiOnScale(differences, "natural");
    const bound = differenceBound(metric);
    if (bound !== null && ci.ci_low !== null && ci.ci_high !== null) {
      ci.ci_low = Math.max(ci.ci_low, -bound);
      ci.ci_high = Math.min(ci.ci_high, bound);
    }
    rows.push({ ...conditionOf(group[0]), epoch: group[0].epoch, metric, unmatched, ...ci });
  }
  return rows;
}

/** Mean and 95% CI across trials of the training loss per (condition, arm, epoch, step), on the log scale (a BCE). */
export function stepSummary(steps: readonly StepRecord[]): StepSummaryRow[] {
  checkUnique(steps, "stepSummary");
  return groupBy(steps, (s) => [...conditionKey(s), s.arm, s.epoch, s.step]).map(([, group]) => {
    for (const s of group) if (!Number.isFinite(s.loss)) throw new Error(`stepSummary: loss = ${s.loss} in ${describe(s)} is not finite`);
    const { arm, epoch, step } = group[0];
    return { ...conditionOf(group[0]), arm, epoch, step, ...meanCiOnScale(group.map((s) => s.loss), "log") };
  });
}
