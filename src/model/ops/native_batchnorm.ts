// Training-mode BatchNorm (+ SiLU) on the native (tfjs-node) backend as one differentiable op
// over libtensorflow's fused kernels.
//
// TF.js composes it from tf.moments and batchNorm's generic gradient: ~25 kernels forward and
// backward per layer, with every intermediate (centred x, squares, normalized x, sigmoid, ...)
// held by the tape until the backward pass. libtensorflow has the fused kernels PyTorch's CPU
// path uses too: FusedBatchNormV3 (is_training) takes the batch statistics, normalizes, and folds
// the running statistics with PyTorch's rule (exponential_avg_factor = momentum, unbiased
// variance) in one call; FusedBatchNormGradV3 returns dx, dgamma, dbeta in one. tfjs-node
// registers them for inference only, but its backend runs any TensorFlow op by name
// (executeMultipleOutputs). Where `make native` built this project's AVX2/FMA kernels and the
// CPU has them (engine/custom_ops.ts), training BatchNorm + SiLU runs on those instead: two passes
// forward and two backward, keeping only x and two per-channel vectors for the backward pass
// (tools/native/ops/batchnorm_act.cc; docs/performance.md, item 18).
//
// May touch: @tensorflow/tfjs, the native backend (native_backend.ts), and (types only) the
// BatchNorm state of layers.ts, whose running statistics it assigns. Called only by ops/layers.ts.
import * as tf from "@tensorflow/tfjs";
import { customOpsActive } from "../../engine/custom_ops";
import type { BatchNormState } from "./layers";
import { floatType, NativeAttr, NativeKernelBackend, runNativeOp } from "./native_backend";

function fusedBatchNormAttrs(nb: NativeKernelBackend, eps: number): NativeAttr[] {
  const B = nb.binding;
  return [
    floatType(nb),
    { name: "U", type: B.TF_ATTR_TYPE, value: B.TF_FLOAT },
    { name: "epsilon", type: B.TF_ATTR_FLOAT, value: eps },
    { name: "data_format", type: B.TF_ATTR_STRING, value: "NHWC" },
    { name: "is_training", type: B.TF_ATTR_BOOL, value: true },
  ];
}

/**
 * SiLU in one pass: TF's SoftplusGrad(dy, x) is dy / (1 + exp(-x)), so SoftplusGrad(x, x) is
 * x * sigmoid(x), computed the way PyTorch's CPU kernel computes SiLU (x / (1 + exp(-x))). One read
 * and one write instead of Sigmoid and Mul's two passes: ~2x faster, and closer to the exact value
 * (max relative error 1.7e-7 against 4.9e-7 for the two ops, measured over 22M normal values).
 */
export function nativeSilu<T extends tf.Tensor>(nb: NativeKernelBackend, x: T): T {
  return softplusGrad(nb, x, x) as T;
}

/** dy * sigmoid(x) in one pass. */
function softplusGrad(nb: NativeKernelBackend, dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  return runNativeOp(nb, "SoftplusGrad", [floatType(nb)], [dy, x]);
}

/**
 * Batch-statistics BatchNorm (+ SiLU) as one differentiable op. The backward pass keeps x,
 * TF's saved batch statistics and, with SiLU, z (the normalized value) and y = silu(z) (y is the
 * next layer's input, alive anyway). With t = dy * sigmoid(z) (one SoftplusGrad),
 * dy * silu'(z) = dy * (s + y (1 - s)) = t + y (dy - t): four passes, no sigmoid kept.
 */
export function nativeTrainingBatchNormAct(nb: NativeKernelBackend, x: tf.Tensor4D, bn: BatchNormState, updateRunningStats: boolean, activation: boolean): tf.Tensor4D {
  if (customOpsActive()) return customTrainingBatchNormAct(nb, x, bn, updateRunningStats, activation);
  const attrs = fusedBatchNormAttrs(nb, bn.eps);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, gamma, beta] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    // With factor 1 TF ignores the mean/variance inputs (they may be empty) and returns the batch's own.
    const factor = updateRunningStats ? bn.momentum : 1;
    const running = updateRunningStats ? [bn.runningMean, bn.runningVar] : [tf.tensor1d([]), tf.tensor1d([])];
    const [z, newMean, newVar, savedMean, savedVar, reserve] = nb.executeMultipleOutputs(
      "FusedBatchNormV3",
      [...attrs, { name: "exponential_avg_factor", type: nb.binding.TF_ATTR_FLOAT, value: factor }],
      [xIn, gamma, beta, ...running],
      6,
    );
    if (updateRunningStats) {
      bn.runningMean.assign(newMean);
      bn.runningVar.assign(newVar);
    }
    // gamma is a variable (or, in a recomputed block, a stand-in alive until its backward pass ends): not saved.
    const bnSaved = [xIn, savedMean, savedVar, reserve];
    if (!activation) {
      save(bnSaved);
      return { value: z, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => fusedBatchNormGrad(nb, attrs, dy, gamma, saved)) };
    }
    const y = nativeSilu(nb, z);
    save([...bnSaved, z, y]);
    return {
      value: y,
      // In a tidy, as every custom gradient here: TF.js runs it in the scope of the whole backward
      // pass, which would keep t and the other intermediates until the pass ends.
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [zv, yv] = saved.slice(4);
        const t = softplusGrad(nb, dy, zv);
        return fusedBatchNormGrad(nb, attrs, tf.add(t, tf.mul(yv, tf.sub(dy, t))), gamma, saved);
      }),
    };
  });
  return op(x, bn.gamma, bn.beta) as tf.Tensor4D;
}

/**
 * The same op on this project's kernels (BiasInitBatchNormAct and its Grad): the forward returns
 * y, the folded running statistics (PyTorch's rule), and the batch's mean and 1/sqrt(var + eps),
 * which with x are all the backward keeps; it recomputes z from them.
 */
function customTrainingBatchNormAct(nb: NativeKernelBackend, x: tf.Tensor4D, bn: BatchNormState, updateRunningStats: boolean, activation: boolean): tf.Tensor4D {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, gamma, beta] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const { y, mean, invstd } = customBatchNormActForward(nb, xIn, gamma, beta, bn, updateRunningStats, activation);
    // gamma and beta are variables (or, in a recomputed block, stand-ins alive until its backward pass ends): not saved.
    save([xIn, mean, invstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => customBatchNormActGrad(nb, dy, saved[0], gamma, beta, saved[1], saved[2], activation)),
    };
  });
  return op(x, bn.gamma, bn.beta) as tf.Tensor4D;
}

/**
 * An MBConv block's output in training where this project's kernels run: its projection's
 * BatchNorm (no activation) of x, times stochastic depth's per-sample factor (perSample; null: 1),
 * plus the block input `residual`, as one op (BiasInitBatchNormResidual, item 35) where that took
 * BiasInitBatchNormAct, a Mul and an AddV2, each writing the block's output. The backward pass is
 * BatchNorm's gradient kernel with the factor as its scale (shift -0, so that fma(dy, f, -0) is
 * dy * f to the sign of zero) and dy itself for the residual: the same bits as the three ops and
 * layers.ts' residualAdd.
 */
export function customBatchNormResidual(nb: NativeKernelBackend, x: tf.Tensor4D, bn: BatchNormState, updateRunningStats: boolean, perSample: Float32Array | null, residual: tf.Tensor4D): tf.Tensor4D {
  const [n, , , c] = x.shape;
  if (perSample !== null && perSample.length !== n) throw new Error(`BiasInitBatchNormResidual: ${perSample.length} factors for a batch of ${n}`);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, gamma, beta, res] = args as tf.Tensor[];
    const factors = tf.tensor1d(perSample ?? new Float32Array(n).fill(1));
    const { y, mean, invstd } = runStatisticsOp(nb, "BiasInitBatchNormResidual", [], [xIn, gamma, beta], [factors, res], bn, updateRunningStats);
    factors.dispose();
    (args[4] as tf.GradSaveFunc)([xIn, mean, invstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [xs, means, invstds] = saved;
        let affine: { scale: tf.Tensor; shift: tf.Tensor } | null = null;
        if (perSample !== null) {
          const scale = new Float32Array(n * c);
          for (let i = 0; i < n; i++) scale.fill(perSample[i], i * c, (i + 1) * c);
          affine = { scale: tf.tensor2d(scale, [n, c]), shift: tf.tensor2d(new Float32Array(n * c).fill(-0), [n, c]) };
        }
        const [dx, dgamma, dbeta] = customBatchNormActGrad(nb, dy, xs, gamma, beta, means, invstds, false, affine);
        return [dx, dgamma, dbeta, dy.clone()];
      }),
    };
  });
  return op(x, bn.gamma, bn.beta, residual) as tf.Tensor4D;
}

/** The `activation` attribute of this project's BatchNorm ops (also native_conv.ts' fused gradient). */
export function customActAttr(nb: NativeKernelBackend, activation: boolean): NativeAttr {
  return { name: "activation", type: nb.binding.TF_ATTR_BOOL, value: activation };
}

/**
 * BiasInitBatchNormAct: y, and the batch's mean and invstd the backward pass needs; assigns the
 * folded running statistics when `updateRunningStats`. Also native_conv.ts' fused op, which passes
 * `depthwise` (filter and attributes): then BiasInitBatchNormActDepthwise, and y is the depthwise
 * convolution of the BatchNorm's output (never written itself).
 */
export function customBatchNormActForward(nb: NativeKernelBackend, x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, bn: BatchNormState, updateRunningStats: boolean, activation: boolean,
  depthwise: { w: tf.Tensor; attrs: NativeAttr[] } | null = null): { y: tf.Tensor; mean: tf.Tensor; invstd: tf.Tensor } {
  const act = [customActAttr(nb, activation)];
  return depthwise === null
    ? runStatisticsOp(nb, "BiasInitBatchNormAct", act, [x, gamma, beta], [], bn, updateRunningStats)
    : runStatisticsOp(nb, "BiasInitBatchNormActDepthwise", [...act, ...depthwise.attrs], [x, gamma, beta], [depthwise.w], bn, updateRunningStats);
}

/**
 * One of this project's training BatchNorm ops whose inputs are x, gamma, beta, the running mean and
 * variance, then `more`, and whose outputs are y, the folded running statistics (PyTorch's rule:
 * assigned to bn's where updateRunningStats), and the batch's mean and 1/sqrt(var + eps).
 */
function runStatisticsOp(nb: NativeKernelBackend, name: string, attrs: NativeAttr[], xGammaBeta: tf.Tensor[], more: tf.Tensor[], bn: BatchNormState,
  updateRunningStats: boolean): { y: tf.Tensor; mean: tf.Tensor; invstd: tf.Tensor } {
  const B = nb.binding;
  const statAttrs = [{ name: "epsilon", type: B.TF_ATTR_FLOAT, value: bn.eps }, { name: "momentum", type: B.TF_ATTR_FLOAT, value: bn.momentum }];
  const [y, newMean, newVar, mean, invstd] = nb.executeMultipleOutputs(name, [...statAttrs, ...attrs], [...xGammaBeta, bn.runningMean, bn.runningVar, ...more], 5);
  if (updateRunningStats) {
    bn.runningMean.assign(newMean);
    bn.runningVar.assign(newVar);
  }
  tf.dispose([newMean, newVar]);
  return { y, mean, invstd };
}

/** BiasInitBatchNormActApply: the forward's y again from x and its saved statistics, bit-identical (the same kernel code). */
export function customBatchNormActApply(nb: NativeKernelBackend, x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, mean: tf.Tensor, invstd: tf.Tensor, activation: boolean): tf.Tensor {
  return runNativeOp(nb, "BiasInitBatchNormActApply", [customActAttr(nb, activation)], [x, gamma, beta, mean, invstd]);
}

/**
 * BiasInitBatchNormActGrad: [dx, dgamma, dbeta]; with `affine` ([N, C] each, x NHWC) of
 * fma(dy, scale, shift) per sample and channel (BiasInitBatchNormActGradScaled: squeeze-excitation's
 * input gradient, squeeze_excitation.ts).
 */
export function customBatchNormActGrad(nb: NativeKernelBackend, dy: tf.Tensor, x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, mean: tf.Tensor, invstd: tf.Tensor, activation: boolean,
  affine: { scale: tf.Tensor; shift: tf.Tensor } | null = null): tf.Tensor[] {
  if (affine !== null) return nb.executeMultipleOutputs("BiasInitBatchNormActGradScaled", [customActAttr(nb, activation)], [dy, x, gamma, beta, mean, invstd, affine.scale, affine.shift], 3);
  return nb.executeMultipleOutputs("BiasInitBatchNormActGrad", [customActAttr(nb, activation)], [dy, x, gamma, beta, mean, invstd], 3);
}

/**
 * Running-statistics BatchNorm (+ SiLU) for evaluation, computed as PyTorch's CPU kernel computes
 * it: alpha = gamma / sqrt(var + eps), shift = beta - mean * alpha (per channel, tiny), then
 * y = x * alpha + shift (two passes). libtensorflow's inference FusedBatchNorm (what tf.batchNorm4d
 * runs; V3 with is_training=false is no better) took 20-50x as long as these two passes on an AMD
 * EPYC guest (71 ms against 4 ms on a 16x120x120x32 input): 80% of a 240x240 evaluation batch.
 */
export function nativeInferenceBatchNormAct(nb: NativeKernelBackend, x: tf.Tensor4D, bn: BatchNormState, activation: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const { alpha, shift } = inferenceScaleShift(bn);
    const y = tf.add(tf.mul(x, alpha), shift) as tf.Tensor4D;
    return activation ? nativeSilu(nb, y) : y;
  });
}

/** Running-statistics BatchNorm as y = x * alpha + shift: PyTorch's alpha = gamma / sqrt(var + eps), shift = beta - mean * alpha. */
export function inferenceScaleShift(bn: BatchNormState): { alpha: tf.Tensor1D; shift: tf.Tensor1D } {
  return tf.tidy(() => {
    const alpha = tf.mul(tf.div(1, tf.sqrt(tf.add(bn.runningVar, bn.eps))), bn.gamma) as tf.Tensor1D;
    return { alpha, shift: tf.sub(bn.beta, tf.mul(bn.runningMean, alpha)) as tf.Tensor1D };
  });
}

/** [dx, dgamma, dbeta] from FusedBatchNormGradV3, given dL/dz and the forward's saved tensors. */
function fusedBatchNormGrad(nb: NativeKernelBackend, attrs: NativeAttr[], dz: tf.Tensor, gamma: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] {
  const [x, savedMean, savedVar, reserve] = saved;
  return nb.executeMultipleOutputs("FusedBatchNormGradV3", attrs, [dz, x, gamma, savedMean, savedVar, reserve], 5).slice(0, 3);
}
