// Statements about several epochs at once ("resolvably lower at epochs 2, 3 and 5") are several
// tests: each at 5% would claim some epoch by chance far more often than 5% of the time. Holm's
// step-down correction keeps the family-wise error rate at alpha over the family of epochs tested.
import { tCdf, MeanCi } from "./student_t";

/** Two-sided p-value of the one-sample t test of mean 0 (a paired difference's): null with one value. */
export function pairedTTestP(d: MeanCi): number | null {
  if (d.sd === null || d.n < 2) return null;
  if (d.sd === 0) return d.mean === 0 ? 1 : 0;
  const t = d.mean / (d.sd / Math.sqrt(d.n));
  return 2 * tCdf(-Math.abs(t), d.n - 1);
}

/**
 * Holm (1979): sort the m p-values ascending; reject the i-th smallest (i = 1..m) while
 * p_(i) <= alpha / (m - i + 1), and stop at the first that is not. Returns, per input in its
 * order, whether its hypothesis is rejected.
 */
export function holmReject(pValues: readonly number[], alpha = 0.05): boolean[] {
  for (const p of pValues) if (!(p >= 0 && p <= 1)) throw new Error(`holmReject: p-value ${p} is not in [0, 1]`);
  const order = pValues.map((p, i) => ({ p, i })).sort((a, b) => a.p - b.p);
  const rejected = pValues.map(() => false);
  for (let k = 0; k < order.length; k++) {
    if (order[k].p > alpha / (order.length - k)) break;
    rejected[order[k].i] = true;
  }
  return rejected;
}

/**
 * Of paired differences (each a mean and CI over paired trials, every one with a p-value), those
 * resolvably below zero: their paired t test rejected after Holm's correction over all of them, and
 * their mean negative. In their order.
 */
export function holmLower<T extends MeanCi>(rows: readonly T[], alpha = 0.05): T[] {
  const rejected = holmReject(rows.map((r) => pairedTTestP(r) as number), alpha);
  return rows.filter((r, i) => rejected[i] && r.mean < 0);
}
