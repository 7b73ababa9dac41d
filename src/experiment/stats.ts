// Statistics over trials: means with Student-t 95% confidence intervals per arm, paired
// differences between arms, and danfojs tables for display.
//
// The arithmetic is plain float64 TypeScript rather than danfojs groupby: it keeps nulls (epoch 0
// has no train loss) and n = 1 (no interval) explicit, pairs arms by trial, and gives results
// that tests can check exactly. danfojs is the display layer (`resultsTable`, `summaryTable`).
import * as dfd from "danfojs-node";
import { ARMS, BACKBONES } from "../config";
import type { Arm, Backbone } from "../config";
import type { EpochMetric, EpochRecord, StepRecord } from "./records";

// ---------------------------------------------------------------------------------------------
// Student's t distribution (no scipy here): CDF through the regularized incomplete beta
// function, quantile by safeguarded Newton iteration on that CDF. Accurate to ~1e-13 relative.

const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Gamma(x) for x > 0 (Lanczos approximation, ~1e-15 relative). */
function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let series = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) series += LANCZOS[i] / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(series);
}

/** Continued fraction of the incomplete beta function (modified Lentz), valid for x < (a+1)/(a+b+2). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 100000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) return h;
  }
  throw new Error(`stats: incomplete beta continued fraction did not converge (x=${x}, a=${a}, b=${b})`);
}

/** Regularized incomplete beta I_x(a, b). */
function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const logFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logFront) * betaContinuedFraction(x, a, b)) / a;
  return 1 - (Math.exp(logFront) * betaContinuedFraction(1 - x, b, a)) / b;
}

function checkDf(fn: string, df: number): void {
  if (!(df > 0) || !Number.isFinite(df)) throw new Error(`${fn}: degrees of freedom must be a positive number, got ${df}`);
}

/** P(T > t) for t >= 0, computed directly (not as 1 - CDF) so the upper tail keeps its precision. */
function tUpperTail(t: number, df: number): number {
  return 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
}

function tDensity(t: number, df: number): number {
  const logNorm = logGamma((df + 1) / 2) - logGamma(df / 2) - 0.5 * Math.log(df * Math.PI);
  return Math.exp(logNorm - ((df + 1) / 2) * Math.log1p((t * t) / df));
}

/** CDF of Student's t with df degrees of freedom. */
export function tCdf(t: number, df: number): number {
  checkDf("tCdf", df);
  if (Number.isNaN(t)) throw new Error("tCdf: t is NaN");
  const tail = tUpperTail(Math.abs(t), df);
  return t >= 0 ? 1 - tail : tail;
}

/** Quantile of Student's t: the t with P(T <= t) = p, e.g. tQuantile(0.975, 9) = 2.2622. */
export function tQuantile(p: number, df: number): number {
  checkDf("tQuantile", df);
  if (!(p > 0 && p < 1)) throw new Error(`tQuantile: p must be in (0, 1), got ${p}`);
  if (p < 0.5) return -tQuantile(1 - p, df);
  if (p === 0.5) return 0;
  const tail = 1 - p;
  // Bracket the root of tUpperTail(t) = tail, then Newton steps that fall back to bisection.
  let lo = 0;
  let hi = 1;
  while (tUpperTail(hi, df) > tail) {
    lo = hi;
    hi *= 2;
  }
  let t = (lo + hi) / 2;
  for (let i = 0; i < 200; i++) {
    const excess = tUpperTail(t, df) - tail;
    if (excess > 0) lo = t;
    else hi = t;
    let next = t + excess / tDensity(t, df);
    if (!(next > lo && next < hi)) next = (lo + hi) / 2;
    if (Math.abs(next - t) <= 1e-15 * t) return next;
    t = next;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Mean and confidence interval of one sample.

export interface MeanCi {
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 denominator); null when n = 1. */
  sd: number | null;
  /** 95% CI mean -+ t(0.975, n-1) * sd / sqrt(n); null when n = 1 (one trial has no spread). */
  ci_low: number | null;
  ci_high: number | null;
}

/** Mean, sample SD and two-sided 95% Student-t interval of `values` (at least one value). */
export function meanCi(values: readonly number[]): MeanCi {
  const n = values.length;
  if (n === 0) throw new Error("meanCi: no values");
  // Shifted by the first value: equal values give exactly that value and a zero SD.
  const shift = values[0];
  const mean = shift + values.reduce((s, v) => s + (v - shift), 0) / n;
  if (n === 1) return { n, mean, sd: null, ci_low: null, ci_high: null };
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) * (v - mean), 0) / (n - 1));
  const half = tQuantile(0.975, n - 1) * (sd / Math.sqrt(n));
  return { n, mean, sd, ci_low: mean - half, ci_high: mean + half };
}

// ---------------------------------------------------------------------------------------------
// Grouping records.

export interface SummaryRow extends MeanCi {
  backbone: Backbone;
  arm: Arm;
  epoch: number;
  /** Which quantity was summarized, e.g. "loss" or "sigmoid(output_bias_value)". */
  metric: string;
}

export interface PairedRow extends MeanCi {
  backbone: Backbone;
  epoch: number;
  metric: string;
  /** Trials present in only one arm at this epoch, left out of the difference. */
  unmatched: number;
}

export interface StepSummaryRow extends MeanCi {
  backbone: Backbone;
  arm: Arm;
  epoch: number;
  step: number;
}

/** Sort order of rows: backbones and arms as listed in config, then numbers ascending. */
function compareKeys(a: readonly (string | number)[], b: readonly (string | number)[]): number {
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
  return `${r.backbone}/${r.arm} trial ${r.trial} epoch ${r.epoch}${step}`;
}

/** A record appearing twice (e.g. a resumed run appending again) would be counted twice: refuse. */
function checkUnique(records: readonly (EpochRecord | StepRecord)[], fn: string): void {
  const seen = new Set<string>();
  for (const r of records) {
    const key = describe(r);
    if (seen.has(key)) throw new Error(`${fn}: duplicate record for ${key}`);
    seen.add(key);
  }
}

/** Groups items by key, keeping the key parts for the output rows, sorted by key. */
function groupBy<T, K extends readonly (string | number)[]>(items: readonly T[], keyOf: (item: T) => K): Array<[K, T[]]> {
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
 * Mean and 95% CI across trials of any per-record quantity, per (backbone, arm, epoch).
 * Records whose value is null are skipped (n counts the others); groups with no value give no row.
 */
export function summarizeWith(
  records: readonly EpochRecord[],
  metric: string,
  valueOf: (r: EpochRecord) => number | null,
): SummaryRow[] {
  checkUnique(records, "summarize");
  const rows: SummaryRow[] = [];
  for (const [[backbone, arm, epoch], group] of groupBy(records, (r) => [r.backbone, r.arm, r.epoch] as const)) {
    const values: number[] = [];
    for (const r of group) {
      const v = metricValue("summarize", r, metric, valueOf(r));
      if (v !== null) values.push(v);
    }
    if (values.length > 0) rows.push({ backbone, arm, epoch, metric, ...meanCi(values) });
  }
  return rows;
}

/** Mean and 95% CI across trials of one metric, per (backbone, arm, epoch). */
export function summarize(records: readonly EpochRecord[], metric: EpochMetric): SummaryRow[] {
  return summarizeWith(records, metric, (r) => r[metric]);
}

/**
 * Per (backbone, epoch): the per-trial difference positive_rate minus vanilla (pairs matched on
 * trial, which share data order and seeds), with its mean and 95% CI. Pairs with a null value are
 * left out; epochs with no complete pair give no row.
 */
export function pairedDifference(records: readonly EpochRecord[], metric: EpochMetric): PairedRow[] {
  checkUnique(records, "pairedDifference");
  const rows: PairedRow[] = [];
  for (const [[backbone, epoch], group] of groupBy(records, (r) => [r.backbone, r.epoch] as const)) {
    const byTrial = new Map<number, Partial<Record<Arm, number | null>>>();
    for (const r of group) {
      const arms = byTrial.get(r.trial) ?? {};
      arms[r.arm] = metricValue("pairedDifference", r, metric, r[metric]);
      byTrial.set(r.trial, arms);
    }
    const differences: number[] = [];
    let unmatched = 0;
    for (const trial of [...byTrial.keys()].sort((a, b) => a - b)) {
      const arms = byTrial.get(trial) as Partial<Record<Arm, number | null>>;
      if (arms.vanilla === undefined || arms.positive_rate === undefined) unmatched++;
      else if (arms.vanilla !== null && arms.positive_rate !== null) differences.push(arms.positive_rate - arms.vanilla);
    }
    if (differences.length > 0) rows.push({ backbone, epoch, metric, unmatched, ...meanCi(differences) });
  }
  return rows;
}

/** Mean and 95% CI across trials of the training loss per (backbone, arm, epoch, step). */
export function stepSummary(steps: readonly StepRecord[]): StepSummaryRow[] {
  checkUnique(steps, "stepSummary");
  return groupBy(steps, (s) => [s.backbone, s.arm, s.epoch, s.step] as const).map(([[backbone, arm, epoch, step], group]) => {
    for (const s of group) if (!Number.isFinite(s.loss)) throw new Error(`stepSummary: loss = ${s.loss} in ${describe(s)} is not finite`);
    return { backbone, arm, epoch, step, ...meanCi(group.map((s) => s.loss)) };
  });
}

// ---------------------------------------------------------------------------------------------
// danfojs tables for display.

/** Column order of `resultsTable`: the reference's CSV columns first, then what this project adds. */
export const RESULTS_COLUMNS = [
  "loss", "roc_auc", "type", "n_epochs", "output_bias_value", "trial_idx",
  "pretrained", "seed", "dataset", "backend", "train_loss", "wall_s", "images_per_s",
] as const;

/**
 * All epoch records as one DataFrame with the reference's column names (`type` is the arm,
 * `n_epochs` the epoch, `trial_idx` the trial) plus `pretrained` (ImageNet backbone) and run
 * details. Rows sorted by backbone, arm, trial, epoch; nulls stay null.
 */
export function resultsTable(records: readonly EpochRecord[]): dfd.DataFrame {
  checkUnique(records, "resultsTable");
  const sorted = [...records].sort((a, b) => compareKeys([a.backbone, a.arm, a.trial, a.epoch], [b.backbone, b.arm, b.trial, b.epoch]));
  if (sorted.length === 0) return new dfd.DataFrame([], { columns: [...RESULTS_COLUMNS] });
  const column = <T>(f: (r: EpochRecord) => T): T[] => sorted.map(f);
  const data: Record<(typeof RESULTS_COLUMNS)[number], unknown[]> = {
    loss: column((r) => r.loss),
    roc_auc: column((r) => r.roc_auc),
    type: column((r) => r.arm),
    n_epochs: column((r) => r.epoch),
    output_bias_value: column((r) => r.output_bias_value),
    trial_idx: column((r) => r.trial),
    pretrained: column((r) => r.backbone === "imagenet"),
    seed: column((r) => r.seed),
    dataset: column((r) => r.dataset),
    backend: column((r) => r.backend),
    train_loss: column((r) => r.train_loss),
    wall_s: column((r) => r.wall_s),
    images_per_s: column((r) => r.images_per_s),
  };
  return new dfd.DataFrame(data);
}

/** Rows from `summarize`/`summarizeWith`, `pairedDifference` or `stepSummary` as a DataFrame. */
export function summaryTable(rows: readonly SummaryRow[] | readonly PairedRow[] | readonly StepSummaryRow[]): dfd.DataFrame {
  if (rows.length === 0) throw new Error("summaryTable: no rows to show (no records, or every value was null)");
  const objects: ReadonlyArray<object> = rows;
  const data: Record<string, unknown[]> = {};
  for (const c of Object.keys(objects[0])) data[c] = objects.map((r) => (r as Record<string, unknown>)[c]);
  return new dfd.DataFrame(data);
}
