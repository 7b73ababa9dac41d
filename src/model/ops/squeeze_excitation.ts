// Squeeze-excitation as torchvision's SqueezeExcitation computes it: the spatial mean, fc1 (a 1x1
// conv on a 1x1 map: a matrix product) + bias, SiLU, fc2 + bias, sigmoid, and the input scaled per
// channel by the result.
//
// With TF.js ops (native and GPU backends) the block is one differentiable op with its backward
// written out: TF.js's generic gradients cost ~30 kernels per block (a cast and a reshape per
// multiply and add, and a full-size tensor of ones uploaded for the mean's gradient: 88 MB per
// block at 240x240 batch 16); this one runs 21 and keeps 7 tensors for the backward pass. Each
// gradient is computed by the same ops in the same order as TF.js's own, so the values are
// bit-identical (test/model.test.ts), except that on the native CPU engine the matrix products are
// TF's MatMul instead of TF.js's BatchMatMulV2 (item 29: the same bits where TensorFlow's oneDNN is
// off, round-off apart where it is on). Where this project's AVX2 kernels run (engine/custom_ops.ts),
// the scaling (forward: x * gate; backward: dy * gate + the mean's gradient) and the gate's gradient
// (the sum over H and W of dy * x) are one pass each (tools/native/ops/channel_ops.cc; item 20),
// and the depthwise convolution's BatchNorm, SE and the block's projection are one op that does not
// keep SE's output (item 21) and hands SE's input gradient to BatchNorm's kernel as an affine it
// applies while reading, instead of a tensor (item 30); from 30x30 positions the gate goes into
// the projection's per-sample weights instead of into SE's output (se_projection_fold.ts, item 34),
// and the gate from the spatial mean is one op each way (BiasInitSqueezeGate and its gradient,
// tools/native/ops/squeeze_gate.cc; item 38) instead of ~27 of TensorFlow's on [N, C] tensors
// (values then move at float round-off).
// On the pure-JS 'cpu' backend the plain-JS kernels of layers.ts run under the tape as before.
// Evaluation computes the gate alone (squeezeExcitationGate) and hands it to the projection, which
// scales its input by it or, on the native CPU engine, may fold it into per-sample weights
// (native_eval.ts).
//
// May touch: @tensorflow/tfjs, the layer API, native_eval.ts' gate and se_projection_fold.ts. Called by efficientnet.ts.
import * as tf from "@tensorflow/tfjs";
import { batchNormAct, BatchNormMode, BatchNormState, checkTrainingCount, dense, fusingNativeOps, pointwiseConv, pointwiseGradients, pointwiseProducts, scaleChannels, silu, spatialMean, usingJsKernels } from "./layers";
import { customBatchNormActForward, customBatchNormActGrad } from "./native_batchnorm";
import { kernelCpuOps, nativeCpuOps, nativeMatMul, runNativeOp } from "./native_backend";
import { customSqueezeGate, customSqueezeGateGrad, nativeSpatialMean, nativeSqueezeGate, squeezeGateKernelOn } from "./native_eval";
import { foldedProjection, foldedProjectionGradients, foldsGateInTraining } from "./se_projection_fold";

/** The four parameters of one block: fc1 [C, S] and its bias [S], fc2 [S, C] and its bias [C]. */
export interface SqueezeExcitationParams {
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
}

/**
 * The gate sigmoid(fc2(silu(fc1(mean_HW(x))))) [N, C] alone, for evaluation: there the caller hands
 * it to the projection (layers.ts convBnAct's inputScale), which on the native CPU engine may fold
 * it into the projection's weights instead of scaling x (native_eval.ts). On the native CPU engine
 * 5 ops (native_eval.ts nativeSqueezeGate); elsewhere TF.js's ops, or the plain-JS kernels.
 * pooled: x's mean over H and W where the caller has it already (layers.ts depthwiseStageForEval).
 */
export function squeezeExcitationGate(x: tf.Tensor4D, p: SqueezeExcitationParams, pooled: tf.Tensor2D | null = null): tf.Tensor2D {
  const native = nativeCpuOps();
  if (native !== null) return nativeSqueezeGate(native, x, p, pooled);
  const fc1 = tf.add(dense(pooled ?? spatialMean(x), p.w1), p.b1) as tf.Tensor2D;
  return tf.sigmoid(tf.add(dense(silu(fc1), p.w2), p.b2)) as tf.Tensor2D;
}

/** x [N, H, W, C] scaled per sample and channel by its gate (training; see squeezeExcitationGate). */
export function squeezeExcitation(x: tf.Tensor4D, p: SqueezeExcitationParams): tf.Tensor4D {
  if (usingJsKernels()) return scaleChannels(x, squeezeExcitationGate(x, p));
  const se = new TrainingSqueezeExcitation(x.shape);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, w1, b1, w2, b2] = args as tf.Tensor[];
    const { value, saved } = se.forward(xIn, w1, b1, w2, b2);
    (args[5] as tf.GradSaveFunc)(saved);
    // In a tidy: TF.js runs a custom gradient in the scope of the whole backward pass.
    return { value, gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => tf.tidy(() => se.backward(dy, s, w1, w2)) };
  });
  return op(x, p.w1, p.b1, p.w2, p.b2) as tf.Tensor4D;
}

/**
 * The depthwise convolution's BatchNorm (+ SiLU) of d (the convolution's output), squeeze-excitation
 * and the block's 1x1 projection (weight [C, out]), as one op in training where this project's
 * kernels run (layers.ts fusingNativeOps). Its backward pass keeps what BatchNorm and SE alone keep
 * (d and its statistics; SE's input and gate), not SE's output, which the projection alone would
 * keep: it recomputes that output in one pass (BiasInitChannelAffine, bit-identical) and drops it
 * after the projection's gradients (item 21). And it hands SE's input gradient to BatchNorm's kernel
 * as the affine it is (dy * gate + the mean's gradient, BiasInitBatchNormActGradScaled) instead of
 * writing it as a tensor that the kernel then reads (item 30): the same fma, so the same bits.
 * Elsewhere the three ops. Gradients and running statistics bit-identical to theirs, except where
 * se_projection_fold.ts folds the gate into the projection's per-sample weights (from 30x30
 * positions; item 34): there SE's output is never written, the gate's gradient comes from the
 * weight-gradient product instead of BiasInitChannelDot, and values move at float round-off.
 */
export function batchNormActSqueezeExcitationProject(d: tf.Tensor4D, bn: BatchNormState, mode: BatchNormMode, activation: boolean, p: SqueezeExcitationParams, projection: tf.Tensor2D): tf.Tensor4D {
  const nb = mode.training ? fusingNativeOps() : null;
  if (nb === null) return pointwiseConv(squeezeExcitation(batchNormAct(d, bn, mode, activation), p), projection);
  checkTrainingCount(d);
  const se = new TrainingSqueezeExcitation(d.shape);
  const [n, h, w, c] = d.shape;
  const out = projection.shape[1];
  const fold = foldsGateInTraining(nb, h * w);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [dIn, gamma, beta, w1, b1, w2, b2, wp] = args as tf.Tensor[];
    const { y, mean, invstd } = customBatchNormActForward(nb, dIn, gamma, beta, bn, mode.updateRunningStats, activation);
    const saved = se.gate(y, w1, b1, w2, b2);
    let projected: tf.Tensor4D;
    if (fold) {
      projected = foldedProjection(nb, y as tf.Tensor4D, se.gateOf(saved), wp as tf.Tensor2D);
    } else {
      const value = se.scaled(saved);
      projected = pointwiseProducts(tf.reshape(value, [n * h * w, c]) as tf.Tensor2D, wp as tf.Tensor2D, [n, h, w, out]);
      value.dispose();
    }
    (args[8] as tf.GradSaveFunc)([dIn, mean, invstd, ...saved]);
    return {
      value: projected,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => tf.tidy(() => {
        const [ds, means, invstds] = s;
        const seSaved = s.slice(3);
        const folded = fold ? foldedProjectionGradients(nb, dy, seSaved[0] as tf.Tensor4D, se.gateOf(seSaved), wp as tf.Tensor2D) : null;
        const [dse, dwp] = folded !== null ? [folded.dy, folded.dw] : pointwiseGradients(dy, tf.reshape(se.scaled(seSaved), [n * h * w, c]) as tf.Tensor2D, wp as tf.Tensor2D, d.shape);
        const { gate, shift, grads } = se.backwardParts(dse, seSaved, w1, w2, folded?.dgate ?? null);
        // Folded, dse is SE's input gradient through the scaling already (dy @ W^T * gate): BatchNorm's kernel adds the mean's part alone.
        const [dd, dgamma, dbeta] = customBatchNormActGrad(nb, dse, ds, gamma, beta, means, invstds, activation, { scale: folded !== null ? tf.onesLike(gate) : gate, shift });
        return [dd, dgamma, dbeta, ...grads, dwp];
      }),
    };
  });
  return op(d, bn.gamma, bn.beta, p.w1, p.b1, p.w2, p.b2, projection) as tf.Tensor4D;
}

/**
 * Training's SE with its backward pass written out (the ops of TF.js's own gradients, same order),
 * for squeezeExcitation and batchNormActSqueezeExcitationProject. Where this project's kernels run the passes
 * over x are one op each (BiasInitChannelAffine, BiasInitChannelDot), and the gate from the mean is
 * one op each way (BiasInitSqueezeGate and its gradient, item 38: the same formulas, products summed
 * in their own order, so round-off apart). On the native CPU engine without them the small products
 * are TF's MatMul (native_backend.ts nativeMatMul; TF.js's tf.matMul elsewhere): the same bits as
 * TF.js's gradients where TensorFlow's oneDNN is off, round-off apart where it is on.
 */
class TrainingSqueezeExcitation {
  /** The native CPU engine (its products run as MatMul), and the same where this project's kernels run too. */
  private readonly cpu = nativeCpuOps();
  private readonly nb = kernelCpuOps();
  /** The same where the gate runs as this project's op (native_eval.ts squeezeGateKernelOn). */
  private readonly gateOp = squeezeGateKernelOn() ? this.nb : null;
  constructor(private readonly shape: [number, number, number, number]) {}

  /** a @ b, each transposed where asked: fc1 and fc2 [N, C] x [C, S] and their gradients. */
  private product(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
    if (this.cpu !== null) return nativeMatMul(this.cpu, a, b, transposeA, transposeB);
    return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, transposeA, transposeB);
  }

  /** t * the saved gate (+ shift [N, C] per sample and channel). */
  private scale(t: tf.Tensor, saved: tf.Tensor[], shift: tf.Tensor | null): tf.Tensor {
    const [n, , , c] = this.shape;
    const gate = this.gateOf(saved);
    // No shift: an empty one, which the kernel reads as zero (fma(x, g, 0) rounds as x * g does).
    if (this.nb !== null) return runNativeOp(this.nb, "BiasInitChannelAffine", [], [t, gate, shift ?? tf.tensor1d([])]);
    const gate4 = saved[6];
    return shift === null ? tf.mul(t, gate4) : tf.add(tf.mul(t, gate4), tf.reshape(shift, [n, 1, 1, c]));
  }

  /** The output and the tensors the backward pass needs (gate's). */
  forward(xIn: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor): { value: tf.Tensor4D; saved: tf.Tensor[] } {
    const saved = this.gate(xIn, w1, b1, w2, b2);
    return { value: this.scaled(saved) as tf.Tensor4D, saved };
  }

  /**
   * The gate and the tensors the backward pass needs: [x, pooled, a, sigmoid(a), u, gate, gate as
   * [N, 1, 1, C]], or where the gate is this project's op (squeezeGateKernelOn) [x, pooled, a, gate]
   * (its gradient op recomputes sigmoid(a) and u from a). gateOf picks the gate.
   */
  gate(xIn: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor): tf.Tensor[] {
    const [n, , , c] = this.shape;
    const pooled = this.cpu !== null ? nativeSpatialMean(this.cpu, xIn) : (tf.mean(xIn, [1, 2]) as tf.Tensor2D);
    // w1, w2: variables, or in a recomputed block stand-ins alive until its backward pass ends: not saved.
    if (this.gateOp !== null) {
      const { gate, a } = customSqueezeGate(this.gateOp, pooled, { w1, b1, w2, b2 });
      return [xIn, pooled, a, gate];
    }
    const a = tf.add(this.product(pooled, w1), b1) as tf.Tensor2D;
    const sa = tf.sigmoid(a);
    const u = tf.mul(a, sa);
    const gate = tf.sigmoid(tf.add(this.product(u, w2), b2));
    return [xIn, pooled, a, sa, u, gate, tf.reshape(gate, [n, 1, 1, c])];
  }

  /** The gate [N, C] among gate()'s saved tensors. */
  gateOf(saved: tf.Tensor[]): tf.Tensor {
    return saved[this.gateOp !== null ? 3 : 5];
  }

  /** The forward's output again from its saved tensors (the same op: bit-identical). */
  scaled(saved: tf.Tensor[]): tf.Tensor {
    return this.scale(saved[0], saved, null);
  }

  /** [dx, dw1, db1, dw2, db2]. */
  backward(dy: tf.Tensor, saved: tf.Tensor[], w1: tf.Tensor, w2: tf.Tensor): tf.Tensor[] {
    const { shift, grads } = this.backwardParts(dy, saved, w1, w2);
    // x's direct part dy * gate, plus the mean's gradient spread as dPooled / (H * W) over every position.
    return [this.scale(dy, saved, shift), ...grads];
  }

  /**
   * [dw1, db1, dw2, db2], and x's gradient as its parts: dy * gate + shift per sample and channel.
   * dGate: the gate's gradient where the caller has it (se_projection_fold.ts; dy is then not read).
   */
  backwardParts(dy: tf.Tensor, saved: tf.Tensor[], w1: tf.Tensor, w2: tf.Tensor, dGate: tf.Tensor | null = null): { gate: tf.Tensor; shift: tf.Tensor; grads: tf.Tensor[] } {
    const [, h, w] = this.shape;
    const [xs, ps, as] = saved;
    // Through x * gate4: the gate's gradient summed over H and W (x's direct part is below).
    dGate ??= this.nb !== null ? runNativeOp(this.nb, "BiasInitChannelDot", [], [dy, xs]) : tf.sum(tf.mul(dy, xs), [1, 2]);
    if (this.gateOp !== null) {
      const [shift, ...grads] = customSqueezeGateGrad(this.gateOp, dGate, ps, as, this.gateOf(saved), w1, w2, h * w);
      return { gate: this.gateOf(saved), shift, grads };
    }
    const [, , , sas, us, gs] = saved;
    // Through sigmoid (TF.js: dy * (y * (1 - y))), fc2 + bias, SiLU (u = a * sigmoid(a)), fc1 + bias.
    const dv = tf.mul(dGate, tf.mul(gs, tf.sub(1, gs)));
    const du = this.product(dv, w2, false, true);
    const da = tf.add(tf.mul(du, sas), tf.mul(tf.mul(du, as), tf.mul(sas, tf.sub(1, sas))));
    const dPooled = this.product(da, w1, false, true);
    const grads = [this.product(ps, da, true, false), tf.sum(da, 0), this.product(us, dv, true, false), tf.sum(dv, 0)];
    return { gate: gs, shift: tf.div(dPooled, h * w), grads };
  }
}
