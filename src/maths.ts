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
