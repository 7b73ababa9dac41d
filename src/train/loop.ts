// One training run of one arm: evaluate at epoch 0, then train and evaluate after every epoch.
// It knows nothing of the grid, the store or notebooks: it reports through callbacks and can
// start from a saved state, which is how the runner resumes an interrupted run.
import * as tf from "@tensorflow/tfjs";
import { makeRng, Rng } from "../rng";
import { epochOrder, batchRanges } from "../data/batches";
import { logLoss, rocAuc } from "./metrics";
import { sigmoid } from "../maths";
import type { EvalMode, ExperimentConfig } from "../config";
import { GroupedMomentumSgd, NamedParameter, OptimizerState } from "./optimizer";

/** What the loop needs from a model (src/model/head.ts's BinaryClassifier provides it). */
export interface TrainableModel {
  forward(x: tf.Tensor4D, opts: { training: boolean; updateBatchNorm?: boolean; rng?: Rng }): tf.Tensor1D;
  trainableVariables(): tf.Variable[];
  /** Every variable by state_dict key: optimizer state is saved under these keys (else under tf.Variable.name). */
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
  /** Optimizer state (momentum buffers) by state_dict key, from the checkpoint (see train/optimizer.ts). */
  optimizer: OptimizerState | null;
}

export interface LoopCallbacks {
  onStep?(p: StepProgress): void;
  /** Called after each evaluation with the optimizer, so the caller can checkpoint (its getWeights() is the OptimizerState); awaited. */
  onEpoch?(m: EpochMetrics, steps: number[] | null, optimizer: tf.Optimizer): Promise<void> | void;
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

/** Test BCE, ROC-AUC and the head bias, in the configured evaluation mode. */
export function evaluate(model: TrainableModel, test: BatchSource, testBatch: number, evalMode: EvalMode, rng: Rng): { loss: number; roc_auc: number; logits: Float32Array } {
  const logits = new Float32Array(test.size);
  const order = Int32Array.from({ length: test.size }, (_, i) => i);
  for (const [start, end] of batchRanges(test.size, testBatch)) {
    const { x, y } = test.batch(order.subarray(start, end));
    // "train" reproduces the reference's quirk: batch statistics and dropout while evaluating;
    // the running statistics are left alone either way.
    const out = tf.tidy(() => model.forward(x, { training: evalMode === "train", updateBatchNorm: false, rng }));
    logits.set(out.dataSync(), start);
    tf.dispose([x, y, out]);
  }
  // Probabilities in float64 from the logits, then sklearn's log_loss (the reference's metric).
  const probs = Float64Array.from(logits, sigmoid);
  return { loss: logLoss(test.labels, probs), roc_auc: rocAuc(test.labels, logits), logits };
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
      await callbacks.onEpoch?.({ epoch: 0, loss: ev.loss, roc_auc: ev.roc_auc, output_bias_value: model.outputBias(), train_loss: null,
        wall_s: (performance.now() - t0) / 1000, images_per_s: null, num_tensors: tf.memory().numTensors }, null, optimizer);
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
        const rng = makeRng(settings.seed, "step", epoch, s);
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
      await callbacks.onEpoch?.({ epoch, loss: ev.loss, roc_auc: ev.roc_auc, output_bias_value: model.outputBias(), train_loss: trainLoss,
        wall_s: (performance.now() - t0) / 1000, images_per_s: seen / trainSeconds, num_tensors: tf.memory().numTensors },
      epoch === 1 ? stepLosses : null, optimizer);
    }
  } finally {
    optimizer.dispose();
  }
}
