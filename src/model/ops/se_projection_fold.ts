// Training's fold of squeeze-excitation's gate into the block's 1x1 projection (item 34), the
// training side of what evaluation does in native_eval.ts (nativeScaledPointwiseBias): the
// projection of SE's output y * gate (y [N, H, W, C], gate [N, C]) is y[n] @ (gate[n] * W), one
// batched product over the [N, H*W, C] view of y with weights scaled per sample, so y * gate is
// never written. Its gradients come from the same per-sample weights and one more batched product:
//   dy_direct = dP[n] @ (gate[n] * W)^T   SE's input gradient through the scaling (dP * W^T * gate)
//   G[n] = y[n]^T @ dP[n]                 [N, C, C_out], a few thousand values per sample
//   dW = sum_n gate[n] * G[n]             the projection's weight gradient
//   dgate[n, c] = sum_o G[n, c, o] W[c, o] the gate's gradient (sum over H, W of dP W^T * y)
// so the two passes that wrote y * gate (forward, and again in the backward pass for dW) and the
// one that summed the gate's gradient (BiasInitChannelDot) are gone; squeeze_excitation.ts
// batchNormActSqueezeExcitationProject calls these where foldsGateInTraining says so. The same
// math with another summation order: values move at float round-off (NUMERICS_VERSION 11).
//
// May touch: @tensorflow/tfjs and the native backend (native_backend.ts). Called only by
// squeeze_excitation.ts.
import * as tf from "@tensorflow/tfjs";
import { nativeBatchMatMul, NativeKernelBackend } from "./native_backend";
import { foldInputScaleMode, oneDnnKernels } from "./native_eval";

/**
 * The fewest positions (H x W) from which training folds the gate. Measured on B1's SE blocks at
 * 240x240 batch 16 (Intel Xeon guest, 2 threads, 2026-12-05; bench/se_fold_calls.ts, forward + backward
 * of the projection and the SE passes it replaces, medians of 12 alternating calls): 120x120 and
 * 60x60 1.7-2.0x faster folded, 30x30 1.3-1.4x, 15x15 even (0.97-1.05x), 8x8 0.6x; at 32x32 batch
 * 64, 16x16 1.3x and 8x8 0.9x. From 30x30 up, so that 32x32 runs (16x16 at most) keep their numbers.
 */
export const TRAINING_FOLD_MIN_POSITIONS = 900;

/**
 * Whether training folds the gate over a [N, H, W, C] input with `positions` = H * W: from
 * TRAINING_FOLD_MIN_POSITIONS up, where oneDNN's batched product runs by name (oneDnnKernels: the
 * rule was measured on it; TensorFlow's own BatchMatMulV2 is Eigen's, without AVX2, where oneDNN is
 * off). setFoldInputScale("always" | "never") forces it, as in evaluation.
 */
export function foldsGateInTraining(nb: NativeKernelBackend, positions: number): boolean {
  const mode = foldInputScaleMode();
  if (mode !== "auto") return mode === "always";
  return positions >= TRAINING_FOLD_MIN_POSITIONS && oneDnnKernels(nb);
}

/** gate [N, C] * W [C, C_out] per sample: [N, C, C_out]. */
function perSampleWeights(gate: tf.Tensor, w: tf.Tensor2D): tf.Tensor {
  return tf.mul(tf.reshape(gate, [-1, w.shape[0], 1]), w);
}

/** The projection of y * gate: y [N, H, W, C], gate [N, C], w [C, C_out] -> [N, H, W, C_out]. */
export function foldedProjection(nb: NativeKernelBackend, y: tf.Tensor4D, gate: tf.Tensor, w: tf.Tensor2D): tf.Tensor4D {
  const [n, h, wd, c] = y.shape;
  return tf.tidy(() => tf.reshape(nativeBatchMatMul(nb, tf.reshape(y, [n, h * wd, c]), perSampleWeights(gate, w), oneDnnKernels(nb)), [n, h, wd, w.shape[1]]) as tf.Tensor4D);
}

/**
 * foldedProjection's gradients for the upstream dp [N, H, W, C_out]: dy (y's gradient through the
 * scaling, dp @ W^T * gate, [N, H, W, C]), dw [C, C_out] and dgate [N, C].
 */
export function foldedProjectionGradients(nb: NativeKernelBackend, dp: tf.Tensor, y: tf.Tensor4D, gate: tf.Tensor, w: tf.Tensor2D): { dy: tf.Tensor4D; dw: tf.Tensor2D; dgate: tf.Tensor2D } {
  const [n, h, wd, c] = y.shape;
  const out = w.shape[1];
  const oneDnn = oneDnnKernels(nb);
  return tf.tidy(() => {
    const dp3 = tf.reshape(dp, [n, h * wd, out]);
    const dy = tf.reshape(nativeBatchMatMul(nb, dp3, perSampleWeights(gate, w), oneDnn, false, true), [n, h, wd, c]) as tf.Tensor4D;
    const g = nativeBatchMatMul(nb, tf.reshape(y, [n, h * wd, c]), dp3, oneDnn, true, false);
    const dw = tf.sum(tf.mul(g, tf.reshape(gate, [n, c, 1])), 0) as tf.Tensor2D;
    const dgate = tf.sum(tf.mul(g, w), 2) as tf.Tensor2D;
    return { dy, dw, dgate };
  });
}
