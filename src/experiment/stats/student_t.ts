// Student's t distribution and the mean with its 95% confidence interval over trials, in plain
// float64 TypeScript, plus the one way an interval is written in text.
//
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


/**
 * The one text form of an interval: `0.3251 (95% CI 0.3100 to 0.3400, 4 trials)`; `signed` puts
 * a sign on every number (differences); `what` names the sample ("trials", "paired trials").
 */
export function formatInterval(m: MeanCi, opts: { signed?: boolean; digits?: number; what?: string } = {}): string {
  const digits = opts.digits ?? 4;
  const what = opts.what ?? "trials";
  const num = (x: number): string => (opts.signed && x >= 0 ? "+" : "") + x.toFixed(digits);
  if (m.ci_low === null || m.ci_high === null) return `${num(m.mean)} (one trial, no CI)`;
  return `${num(m.mean)} (95% CI ${num(m.ci_low)} to ${num(m.ci_high)}, ${m.n} ${what})`;
}
