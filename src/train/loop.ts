// One training run of one arm: evaluate at epoch 0, then train and evaluate after every epoch.
// It knows nothing of the grid, the store or notebooks: it reports through callbacks and can
// start from a saved state, which is how the runner resumes an interrupted run.
import * as tf from "@tensorflow/tfjs";
import { makeRng, Rng } from "../rng";
import { epochOrder, batchRanges } from "../data/batches";
import { expectedCalibrationError, logitMoments, logLoss, meanOf, rocAuc } from "./metrics";
import { sigmoid } from "../maths";
import { ANALYSIS } from "../config";
import type { EvalMode, ExperimentConfig } from "../config";
import { UserError } from "../errors";

/** What the loop needs from a model (src/model/head.ts's BinaryClassifier provides it). */
export interface TrainableModel {
  forward(x: tf.Tensor4D, opts: { training: boolean; updateBatchNorm?: boolean; rng?: Rng }): tf.Tensor1D;
  trainableVariables(): tf.Variable[];
  /** Every variable by its state_dict key: optimizer state is saved and restored by these keys (else by tf.Variable.name). */
  namedVariables?(): Map<string, tf.Variable>;
  outputBias(): number;
}

/** What the loop needs from a dataset: labels on the host and batches on the device. */
export interface BatchSource {
  readonly size: number;
  readonly labels: Float32Array;
  /** x: NHWC float32 ready for the model; y: 0/1 labels. The caller disposes both. */
  batch(indices: ArrayLike<number>): { x: tf.Tensor4D; y: tf.Tensor1D };
}

/** The config's training knobs; `seed` is the trial's (data order and dropout masks derive from it). */
export type LoopSettings = Pick<ExperimentConfig, "epochs" | "lr" | "momentum" | "trainBatch" | "testBatch" | "evalMode" | "seed">;

/** One evaluation's numbers (epoch 0 = before any step), plus tf.memory().numTensors to check for leaks. */
export interface EpochMetrics {
  /** 0 = before any step, then 1..epochs after each epoch. */
  epoch: number;
  /** Test binary cross-entropy: sklearn-style log loss on sigmoid probabilities. */
  loss: number;
  roc_auc: number;
  /** The output logit's bias (its sigmoid is the model's prior positive rate). */
  output_bias_value: number;
  /** Mean training loss over the epoch; null at epoch 0. */
  train_loss: number | null;
  wall_s: number;
  images_per_s: number | null;
  num_tensors: number;
  /** Expected calibration error of the test probabilities (metrics.ts: ANALYSIS.eceBins equal-width bins). */
  ece: number;
  /** Mean predicted test probability: the model's positive rate, to hold against test_positive_rate. */
  mean_prob: number;
  /** Measured positive rate of the test labels. */
  test_positive_rate: number;
  /** Mean and SD (n denominator) of the test logits, in the evaluation mode of `loss`. */
  logit_mean: number;
  logit_sd: number;
  /**
   * Epoch 0 only (else null): mean and SD of the first training batch's logits in train mode
   * (batch-statistics BatchNorm, the first step's dropout masks) before any step, and that batch's
   * positive rate: what the first step's loss is computed from.
   */
  first_batch_logit_mean: number | null;
  first_batch_logit_sd: number | null;
  first_batch_positive_rate: number | null;
  /** evalMode "both" only (else null): test BCE and ROC-AUC in train mode beside the eval-mode ones. */
  loss_train_mode: number | null;
  roc_auc_train_mode: number | null;
}

export interface StepProgress {
  epoch: number;
  step: number;
  steps: number;
  loss: number;
  imagesPerS: number;
}

/**
 * The optimizer's state as the loop hands it out and takes it back: the momentum buffer of each
 * trainable variable, named by the variable's state_dict key. Empty before the first step.
 */
export type OptimizerState = Array<{ name: string; tensor: tf.Tensor }>;

export interface LoopState {
  /** Last finished epoch (0 = only the initial evaluation happened). */
  epoch: number;
  /** From the checkpoint; restored by name with a shape check, then disposed by the loop. */
  optimizer: OptimizerState | null;
}

/** Optimizer state that does not fit the model (a key missing, unknown or of another shape). */
export class OptimizerStateError extends UserError {
  override name = "OptimizerStateError";
}

export interface LoopCallbacks {
  onStep?(p: StepProgress): void;
  /**
   * Called after each evaluation, so the caller can checkpoint; awaited. `optimizerState()` gives
   * the optimizer's own buffers: read them before returning, never dispose them.
   */
  onEpoch?(m: EpochMetrics, steps: number[] | null, optimizerState: () => Promise<OptimizerState>): Promise<void> | void;
  /** Checked between steps: return true to stop after the step in flight (the epoch is lost). */
  shouldStop?(): boolean;
}

export class TrainingDiverged extends Error {
  override name = "TrainingDiverged";
  constructor(readonly epoch: number, readonly step: number, readonly loss: number) {
    super(`training diverged: loss is ${loss} at epoch ${epoch}, step ${step}; the run stops here (earlier epochs are kept)`);
  }
}

export class TrainingStopped extends Error {
  override name = "TrainingStopped";
}

/** What one evaluation of the test set measures (EpochMetrics less the bias, timing and training fields). */
export type Evaluation = Pick<EpochMetrics, "loss" | "roc_auc" | "ece" | "mean_prob" | "test_positive_rate" | "logit_mean" | "logit_sd" | "loss_train_mode" | "roc_auc_train_mode">;

/** The test set's logits, in train mode (batch statistics, dropout from `rng`) or eval mode; running statistics are left alone. */
function testLogits(model: TrainableModel, test: BatchSource, testBatch: number, training: boolean, rng: Rng): Float32Array {
  const logits = new Float32Array(test.size);
  const order = Int32Array.from({ length: test.size }, (_, i) => i);
  for (const [start, end] of batchRanges(test.size, testBatch)) {
    const { x, y } = test.batch(order.subarray(start, end));
    const out = tf.tidy(() => model.forward(x, { training, updateBatchNorm: false, rng }));
    logits.set(out.dataSync(), start);
    tf.dispose([x, y, out]);
  }
  return logits;
}

/**
 * Test BCE, ROC-AUC, calibration and logit spread in the configured evaluation mode: "eval" uses
 * the running BatchNorm statistics; "train" reproduces the reference's quirk (batch statistics and
 * dropout while evaluating); "both" measures in eval mode and adds train-mode BCE and ROC-AUC
 * (same `rng`, so they equal a "train" run's).
 */
export function evaluate(model: TrainableModel, test: BatchSource, testBatch: number, evalMode: EvalMode, rng: Rng): Evaluation {
  const logits = testLogits(model, test, testBatch, evalMode === "train", rng);
  // Probabilities in float64 from the logits, then sklearn's log_loss (the reference's metric).
  const probs = Float64Array.from(logits, sigmoid);
  const moments = logitMoments(logits);
  let trainMode: { loss: number; roc_auc: number } | null = null;
  if (evalMode === "both") {
    const other = testLogits(model, test, testBatch, true, rng);
    trainMode = { loss: logLoss(test.labels, Float64Array.from(other, sigmoid)), roc_auc: rocAuc(test.labels, other) };
  }
  return {
    loss: logLoss(test.labels, probs), roc_auc: rocAuc(test.labels, logits),
    ece: expectedCalibrationError(test.labels, probs, ANALYSIS.eceBins), mean_prob: meanOf(probs), test_positive_rate: meanOf(test.labels),
    logit_mean: moments.mean, logit_sd: moments.sd,
    loss_train_mode: trainMode?.loss ?? null, roc_auc_train_mode: trainMode?.roc_auc ?? null,
  };
}

/**
 * The first training batch as the first step sees it, before that step: its logits in train mode
 * (batch statistics, the first step's dropout masks; the running statistics are left alone) and
 * its labels. Their spread, against the test logits' in eval mode, shows that the bias sets the
 * mean logit but not its spread.
 */
export function firstBatch(model: TrainableModel, train: BatchSource, settings: LoopSettings): { logits: Float32Array; labels: Float32Array } {
  const [start, end] = batchRanges(train.size, settings.trainBatch)[0];
  const { x, y } = train.batch(epochOrder(train.size, settings.seed, 1).subarray(start, end));
  const out = tf.tidy(() => model.forward(x, { training: true, updateBatchNorm: false, rng: stepRng(settings.seed, 1, 0) }));
  const result = { logits: out.dataSync() as Float32Array, labels: y.dataSync() as Float32Array };
  tf.dispose([x, y, out]);
  return result;
}

/** The dropout and stochastic-depth masks of step `s` (0-based) of `epoch`. */
function stepRng(seed: number, epoch: number, s: number): Rng {
  return makeRng(seed, "step", epoch, s);
}

/**
 * Trains `model` from `state` (or from scratch) to `settings.epochs`, evaluating after each epoch.
 * Throws TrainingDiverged on a non-finite loss and TrainingStopped when asked to stop.
 */
export async function trainLoop(model: TrainableModel, train: BatchSource, test: BatchSource, settings: LoopSettings,
  callbacks: LoopCallbacks = {}, state: LoopState | null = null): Promise<void> {
  // PyTorch's SGD with momentum (dampening 0, no Nesterov) is buf = m*buf + g; p -= lr*buf,
  // which is exactly TF.js's MomentumOptimizer with useNesterov false.
  const optimizer = tf.train.momentum(settings.lr, settings.momentum, false);
  const variables = model.trainableVariables();
  const keys = variableKeys(model);
  const optimizerState = (): Promise<OptimizerState> => momentumState(optimizer, keys);
  try {
    if (state?.optimizer) {
      try {
        await restoreMomentum(optimizer, variables, keys, state.optimizer);
      } finally {
        // setWeights copies the values into the optimizer's own variables.
        tf.dispose(state.optimizer.map((t) => t.tensor));
      }
    }
    const first = state ? state.epoch + 1 : 0;
    if (first === 0) {
      const t0 = performance.now();
      const ev = evaluate(model, test, settings.testBatch, settings.evalMode, makeRng(settings.seed, "eval", 0));
      const batch = firstBatch(model, train, settings);
      const spread = logitMoments(batch.logits);
      await callbacks.onEpoch?.({ epoch: 0, ...ev, output_bias_value: model.outputBias(), train_loss: null,
        first_batch_logit_mean: spread.mean, first_batch_logit_sd: spread.sd, first_batch_positive_rate: meanOf(batch.labels),
        wall_s: (performance.now() - t0) / 1000, images_per_s: null, num_tensors: tf.memory().numTensors }, null, optimizerState);
    }
    for (let epoch = Math.max(first, 1); epoch <= settings.epochs; epoch++) {
      const t0 = performance.now();
      const order = epochOrder(train.size, settings.seed, epoch);
      const ranges = batchRanges(train.size, settings.trainBatch);
      const stepLosses: number[] = [];
      let seen = 0;
      for (let s = 0; s < ranges.length; s++) {
        if (callbacks.shouldStop?.()) throw new TrainingStopped(`stopped during epoch ${epoch}`);
        const [start, end] = ranges[s];
        const { x, y } = train.batch(order.subarray(start, end));
        const rng = stepRng(settings.seed, epoch, s);
        const lossTensor = optimizer.minimize(() => {
          const logits = model.forward(x, { training: true, updateBatchNorm: true, rng });
          return tf.losses.sigmoidCrossEntropy(y, logits) as tf.Scalar;
        }, true, variables);
        const loss = lossTensor === null ? NaN : lossTensor.dataSync()[0];
        tf.dispose([x, y, lossTensor as tf.Tensor]);
        if (!Number.isFinite(loss)) throw new TrainingDiverged(epoch, s + 1, loss);
        stepLosses.push(loss);
        seen += end - start;
        callbacks.onStep?.({ epoch, step: s + 1, steps: ranges.length, loss, imagesPerS: seen / ((performance.now() - t0) / 1000) });
        // Let signal handlers and kernel interrupts run between steps, so shouldStop() can see them.
        await new Promise((resolve) => setImmediate(resolve));
      }
      const trainSeconds = (performance.now() - t0) / 1000;
      const ev = evaluate(model, test, settings.testBatch, settings.evalMode, makeRng(settings.seed, "eval", epoch));
      const trainLoss = stepLosses.reduce((a, b) => a + b, 0) / stepLosses.length;
      await callbacks.onEpoch?.({ epoch, ...ev, output_bias_value: model.outputBias(), train_loss: trainLoss,
        first_batch_logit_mean: null, first_batch_logit_sd: null, first_batch_positive_rate: null, wall_s: (performance.now() - t0) / 1000, images_per_s: seen / trainSeconds, num_tensors: tf.memory().numTensors },
      epoch === 1 ? stepLosses : null, optimizerState);
    }
  } finally {
    optimizer.dispose();
    // TF.js 4.22's MomentumOptimizer.dispose() overrides SGD's without disposing the -lr scalar
    // that SGD's constructor keeps, which would leak one tensor per run.
    (optimizer as unknown as { c?: tf.Tensor }).c?.dispose();
  }
}

/** tf.Variable.name (which may carry a prefix, e.g. "m1/features.0.0.weight") -> state_dict key. */
function variableKeys(model: TrainableModel): Map<string, string> {
  const keys = new Map<string, string>();
  for (const v of model.trainableVariables()) keys.set(v.name, v.name);
  for (const [key, v] of model.namedVariables?.() ?? []) keys.set(v.name, key);
  return keys;
}

// TF.js's MomentumOptimizer keeps one buffer per variable, named "<tf.Variable.name>/momentum",
// in the order of the variables it was given, and its setWeights takes them back by position
// after an iteration count. Position is never trusted here: buffers travel by state_dict key.
const MOMENTUM_SUFFIX = "/momentum";

async function momentumState(optimizer: tf.Optimizer, keys: Map<string, string>): Promise<OptimizerState> {
  const slots = await optimizer.getWeights();
  const state: OptimizerState = [];
  for (const s of slots) {
    if (!s.name.endsWith(MOMENTUM_SUFFIX)) {
      s.tensor.dispose(); // the iteration count: a fresh scalar, unused by SGD with momentum
      continue;
    }
    const key = keys.get(s.name.slice(0, -MOMENTUM_SUFFIX.length));
    if (key === undefined) throw new Error(`optimizer slot ${s.name} belongs to no trainable variable of the model`);
    state.push({ name: key, tensor: s.tensor });
  }
  return state;
}

async function restoreMomentum(optimizer: tf.Optimizer, variables: tf.Variable[], keys: Map<string, string>, state: OptimizerState): Promise<void> {
  if (state.length === 0) return; // saved before the first step: no buffers yet
  const byKey = new Map(state.map((s) => [s.name, s.tensor]));
  const problems: string[] = [];
  const ordered: tf.Tensor[] = [];
  for (const v of variables) {
    const key = keys.get(v.name) as string;
    const t = byKey.get(key);
    byKey.delete(key);
    if (t === undefined) problems.push(`no momentum buffer for ${key}`);
    else if (t.shape.join(",") !== v.shape.join(",")) problems.push(`${key} has shape [${t.shape.join(", ")}], the model's is [${v.shape.join(", ")}]`);
    else ordered.push(t);
  }
  for (const key of byKey.keys()) problems.push(`momentum buffer ${key} matches no trainable variable`);
  if (problems.length > 0) {
    throw new OptimizerStateError(`optimizer state does not fit the model (${problems.length} problem(s), first: ${problems[0]}); ` +
      "it was saved by another model or code version: delete the unit's folder to retrain it");
  }
  const iterations = tf.scalar(0, "int32");
  try {
    await optimizer.setWeights([{ name: "iter", tensor: iterations }, ...variables.map((v, i) => ({ name: `${v.name}${MOMENTUM_SUFFIX}`, tensor: ordered[i] }))]);
  } finally {
    iterations.dispose();
  }
}
