// The training step the benchmarks time: B1 (or another model) + head on one fixed batch of random
// images, with the optimizer of src/train/loop.ts, as one call that leaves no tensor behind.
// Shared by train_speed.ts, recompute_memory.ts, interleaved_ab.ts and test/helpers/signal_child.ts;
// and the evaluation batch that train_speed.ts and interleaved_ab.ts time.
import * as tf from "@tensorflow/tfjs";
import type { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import { GroupedMomentumSgd } from "../src/train/optimizer";
import { namedParameters } from "../src/train/loop";
import { EvalFolds } from "../src/model/ops/native_eval";

/**
 * One SGD step of `net` on a [batch, size, size, 3] batch drawn once (seed 1). Labels: `labels`, or
 * drawn positive with probability 0.1 from the "bench-data" stream, which also keys dropout masks.
 */
export function benchTrainingStep(net: BinaryClassifier, size: number, batch: number, labels?: number[]): { step: () => number; dispose: () => void } {
  const optimizer = new GroupedMomentumSgd(1e-4, 0.9, namedParameters(net));
  const variables = net.trainableVariables();
  const rng = makeRng(0, "bench-data");
  const x = tf.randomNormal([batch, size, size, 3], 0, 1, "float32", 1) as tf.Tensor4D;
  const y = tf.tensor1d(labels ?? Array.from({ length: batch }, () => (rng.next() < 0.1 ? 1 : 0)));
  /** Runs the step; returns its loss. */
  const step = (): number => {
    const loss = optimizer.minimize(() => tf.losses.sigmoidCrossEntropy(y, net.forward(x, { training: true, updateBatchNorm: true, rng })) as tf.Scalar, true, variables) as tf.Scalar;
    const value = loss.dataSync()[0];
    loss.dispose();
    return value;
  };
  /** The batch and the optimizer's momentum buffers (not the model). */
  const dispose = (): void => {
    tf.dispose([x, y]);
    optimizer.dispose();
  };
  return { step, dispose };
}

/**
 * One evaluation batch of `net` on `x` (the caller's), as train/loop.ts' evaluate runs it: BatchNorm
 * folded once, by the first batch, and the folds kept for the batches after it; `dispose` frees them.
 */
export function benchEvalStep(net: BinaryClassifier, x: tf.Tensor4D): { step: () => void; dispose: () => void } {
  const folds = new EvalFolds();
  const step = (): void => {
    const out = tf.tidy(() => net.forward(x, { training: false, folds }));
    out.dataSync();
    out.dispose();
  };
  return { step, dispose: () => folds.dispose() };
}
