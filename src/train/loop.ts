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
import { GroupedMomentumSgd, NamedParameter, OptimizerState } from "./optimizer";
import { EvalFolds } from "../model/ops/native_eval";

/** What the loop needs from a model (src/model/head.ts's BinaryClassifier provides it). */
export interface TrainableModel {
  /** `folds`: evaluation only, the BatchNorm folds of one evaluation pass (model/ops/native_eval.ts). */
  forward(x: tf.Tensor4D, opts: { training: boolean; updateBatchNorm?: boolean; rng?: Rng; folds?: EvalFolds }): tf.Tensor1D;
  trainableVariables(): tf.Variable[];
  /** Every variable by its state_dict key: optimizer state is saved and restored by these keys (else by tf.Variable.name). */
  namedVariables?(): Map<string, tf.Variable>;
  outputBias(): number;
}

/** The model's trainable variables, each named by its state_dict key when the model has keys. */
export function namedParameters(model: TrainableModel): NamedParameter[] {
  const keyOf = new Map<tf.Variable, string>();
  for (const [key, v] of model.namedVariables?.() ?? []) keyOf.set(v, key);
  return model.trainableVariables().map((variable) => ({ name: keyOf.get(variable) ?? variable.name, variable }));
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

export interface LoopState {
  /** Last finished epoch (0 = only the initial evaluation happened). */
  epoch: number;
  /** From the checkpoint; restored by state_dict key with a shape check (train/optimizer.ts), then disposed by the loop. */
  optimizer: OptimizerState | null;
}

export interface LoopCallbacks {
  onStep?(p: StepProgress): void;
  /**
   * Called after each evaluation, so the caller can checkpoint; awaited. `optimizerState()` gives
   * the momentum buffers by state_dict key: read them before returning; the loop disposes them.
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
  // The variables do not change during the pass: BatchNorm is folded into each convolution once.
  const folds = training ? undefined : new EvalFolds();
  try {
    for (const [start, end] of batchRanges(test.size, testBatch)) {
      const { x, y } = test.batch(order.subarray(start, end));
      const out = tf.tidy(() => model.forward(x, { training, updateBatchNorm: false, rng, folds }));
      logits.set(out.dataSync(), start);
      tf.dispose([x, y, out]);
    }
  } finally {
    folds?.dispose();
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
  // PyTorch's SGD with momentum (dampening 0, no Nesterov): buf = m*buf + g; p -= lr*buf.
  const optimizer = new GroupedMomentumSgd(settings.lr, settings.momentum, namedParameters(model));
  const variables = model.trainableVariables();
  // What the last onEpoch read of the optimizer's state: fresh copies, disposed once it returns.
  let handedOut: OptimizerState = [];
  const optimizerState = async (): Promise<OptimizerState> => {
    tf.dispose(handedOut.map((s) => s.tensor));
    handedOut = optimizer.state();
    return handedOut;
  };
  const release = (): void => {
    tf.dispose(handedOut.map((s) => s.tensor));
    handedOut = [];
  };
  try {
    if (state?.optimizer) {
      try {
        // The optimizer copies the values (and checks every key and shape).
        optimizer.restore(state.optimizer);
      } finally {
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
      release();
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
      release();
    }
  } finally {
    release();
    optimizer.dispose();
  }
}
