// Intervals that respect a metric's range. A Student-t interval computed on the metric itself can
// leave the range (two trials of ROC-AUC 0.95 and 0.80 give 0.875 +- 0.95); computed on a scale
// where the range is the whole real line (logit for [0, 1], log for (0, inf)) and mapped back, it
// cannot. Paired differences (positive rate - vanilla) stay on the natural scale, where their sign
// is the question; those of a [0, 1] metric (ROC-AUC, ECE, probabilities) can only lie in [-1, 1],
// so their intervals are cut there (differenceBound).
import type { EpochMetric } from "../records";
import { meanCi, MeanCi } from "./student_t";

/** Where an interval is computed: the metric itself, log(x) for x > 0, or log(x / (1 - x)) for x in [0, 1]. */
export type Scale = "natural" | "logit" | "log";

/** A mean and its 95% CI, with the scale the interval was computed on. */
export interface Interval extends MeanCi {
  scale: Scale;
}

/**
 * Values exactly on a bound (an ROC-AUC of 1, an ECE of 0) have no logit or log: they are moved
 * this far inside first. It only matters for such values, whose intervals then reach the bound.
 */
export const BOUND_CLAMP = 1e-12;

/** The scale each epoch metric's interval is computed on. */
export const METRIC_SCALE: Readonly<Record<EpochMetric, Scale>> = {
  loss: "log", train_loss: "log", loss_train_mode: "log", logit_sd: "log",
  roc_auc: "logit", roc_auc_train_mode: "logit", ece: "logit", mean_prob: "logit", test_positive_rate: "logit", first_batch_positive_rate: "logit",
  output_bias_value: "natural", logit_mean: "natural", first_batch_logit_mean: "natural", first_batch_logit_sd: "log",
};

const TRANSFORM: Readonly<Record<Scale, { to(x: number): number; from(y: number): number; check(x: number): boolean }>> = {
  natural: { to: (x) => x, from: (y) => y, check: () => true },
  log: { to: (x) => Math.log(Math.max(x, BOUND_CLAMP)), from: (y) => Math.exp(y), check: (x) => x >= 0 },
  logit: {
    to: (x) => {
      const c = Math.min(Math.max(x, BOUND_CLAMP), 1 - BOUND_CLAMP);
      return Math.log(c / (1 - c));
    },
    from: (y) => 1 / (1 + Math.exp(-y)),
    check: (x) => x >= 0 && x <= 1,
  },
};

/** The largest size a paired difference of `metric` can have: 1 for [0, 1] metrics, null for unbounded ones (a BCE difference). */
export function differenceBound(metric: EpochMetric): number | null {
  return METRIC_SCALE[metric] === "logit" ? 1 : null;
}

/**
 * Mean (arithmetic, on the natural scale), sample SD, and the two-sided 95% Student-t interval
 * computed on `scale` and mapped back: for "logit", sigmoid(mean(logit x) -+ t * sd(logit x) / sqrt(n)).
 * One value: no interval.
 */
export function meanCiOnScale(values: readonly number[], scale: Scale): Interval {
  const transform = TRANSFORM[scale];
  for (const v of values) if (!transform.check(v)) throw new Error(`meanCiOnScale: ${v} is outside the range of the ${scale} scale`);
  const natural = meanCi(values);
  if (scale === "natural" || natural.ci_low === null) return { ...natural, scale };
  const onScale = meanCi(values.map(transform.to));
  return { ...natural, ci_low: transform.from(onScale.ci_low as number), ci_high: transform.from(onScale.ci_high as number), scale };
}

/**
 * The sentence every figure note, caption and the README use for how intervals were computed, e.g.
 * "95% CI: Student t over trials, BCE on the log scale, ROC-AUC on the logit scale, mapped back so
 * it cannot leave the metric's range". `items` pairs what is shown with its scale.
 */
export function intervalText(items: ReadonlyArray<readonly [string, Scale]>, over = "trials"): string {
  const mapped = items.some(([, scale]) => scale !== "natural") ? ", mapped back so it cannot leave the metric's range" : "";
  return `95% CI: Student t over ${over}, ${items.map(([what, scale]) => `${what} on the ${scale} scale`).join(", ")}${mapped}`;
}
