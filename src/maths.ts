// The experiment's scalar maths, used by the model (bias init), the training loop (probabilities),
// the statistics, the figures and the notebooks: one definition each, depending on nothing.

/** The logistic function 1 / (1 + exp(-z)). */
export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/** Its inverse log(p / (1 - p)) for p in (0, 1). */
export function logit(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`logit: p must be in (0, 1), got ${p}`);
  return Math.log(p / (1 - p));
}

/**
 * Binary entropy H(p) in nats: the log loss of the best constant predictor on data with positive
 * rate p (0.325 for p = 0.1), i.e. where a well-initialized bias starts the loss curve.
 */
export function entropyNats(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`entropyNats: p must be in [0, 1], got ${p}`);
  const term = (q: number): number => (q === 0 ? 0 : -q * Math.log(q));
  return term(p) + term(1 - p);
}

/**
 * Binary cross-entropy in nats of predicting probability q for every item of a set with positive
 * rate p: -p log q - (1 - p) log(1 - q). Equals H(p) at q = p, its minimum over q.
 */
export function crossEntropyNats(p: number, q: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`crossEntropyNats: p must be in [0, 1], got ${p}`);
  if (!(q > 0 && q < 1)) throw new RangeError(`crossEntropyNats: q must be in (0, 1), got ${q}`);
  return -(p === 0 ? 0 : p * Math.log(q)) - (p === 1 ? 0 : (1 - p) * Math.log1p(-q));
}

/**
 * The walkthrough's table: the bias that makes sigmoid(bias) = p, and the initial losses that go
 * with each arm, from the measured positive rate p.
 */
export function biasMathsTable(p: number): { columns: string[]; values: Array<[string, string, number]> } {
  const b = logit(p);
  return {
    columns: ["quantity", "formula", "value"],
    values: [
      ["positive rate p (measured)", "mean of the 0/1 training labels", p],
      ["positive-rate bias b", "log(p / (1 - p))", b],
      ["sigmoid(b)", "1 / (1 + exp(-b)): equals p", sigmoid(b)],
      ["expected initial BCE, positive-rate bias", "H(p) = -p log p - (1 - p) log(1 - p)", entropyNats(p)],
      ["expected initial BCE, vanilla bias (logit ~ 0)", "log 2 = H(0.5)", Math.LN2],
      ["loss the vanilla arm must shed first", "log 2 - H(p)", Math.LN2 - entropyNats(p)],
    ],
  };
}
