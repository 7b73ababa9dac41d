// The layer API of the EfficientNet backbone and the binary head, with PyTorch's semantics:
// convolutions with symmetric padding, BatchNorm (+ SiLU) with PyTorch's running-statistics rule,
// the squeeze-excitation helpers, and the random masks of dropout and stochastic depth (drawn from
// the caller's seeded Rng on the CPU, so masks are identical on every backend and replay exactly).
//
// Each op picks one of three implementations of the same math:
// - TF.js ops (any backend: native, GPU, and the pure-JS 'cpu' backend when kernels are "off"),
//   the 1x1 convolution and the residual add as one differentiable op each, with fewer kernels
//   and fewer tensors kept for the backward pass than TF.js's generic gradients;
// - on the pure-JS 'cpu' backend, the plain-JS kernels of js_kernels.ts and js_channel_kernels.ts;
// - on the native backend, libtensorflow ops TF.js does not expose: training BatchNorm (+ SiLU),
//   evaluation BatchNorm on the CPU as PyTorch computes it, one-pass SiLU (native_batchnorm.ts),
//   BatchNorm folded into the convolution for evaluation on the CPU (native_eval.ts), strided
//   depthwise convolution with explicit padding (native_conv.ts).
// The tests check the implementations against each other.
//
// May touch: @tensorflow/tfjs, the kernel files of this folder, and the BatchNorm running
// statistics it is given. Knows nothing of the model's structure (efficientnet.ts, head.ts).
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../../rng";
import { jsConv, jsDepthwiseConv, jsMatMul } from "./js_kernels";
import { symmetricPad } from "./padding";
import { jsBatchNormAct, jsScaleChannels, jsSpatialMean } from "./js_channel_kernels";
import { fusesExpansion, nativeDepthwiseSilu, nativeExpandDepthwiseSilu, nativeExpansionBias } from "./native_eval_stage";
import { customBatchNormResidual, nativeInferenceBatchNormAct, nativeSilu, nativeTrainingBatchNormAct } from "./native_batchnorm";
import { type ConvKind, EvalFolds, foldBatchNorm, type FoldedConv, foldsInputScale, fusesOnCpu, nativeFusedConv, nativePointwiseBias, nativeScaledPointwiseBias, oneDnnKernels } from "./native_eval";
import { type NativeKernelBackend, kernelCpuOps, nativeCpuOps, nativeOnGpu, nativeOps } from "./native_backend";
import { nativeBatchNormActDepthwise, nativeDepthwiseConvPadded } from "./native_conv";
import { customOpsActive } from "../../engine/custom_ops";

const WHERE = "src/model/ops/layers.ts";

export type KernelMode = "auto" | "off";
let kernelMode: KernelMode = "auto";

/** "auto" (default): the plain-JS kernels on the 'cpu' backend. "off": TF.js ops everywhere (tests, benchmarks). */
export function setJsKernels(mode: KernelMode): void {
  kernelMode = mode;
}

let layerFusion: KernelMode = "auto";

/**
 * "auto" (default): in training where this project's kernels run, two pairs of layers run as one op
 * each whose backward pass recomputes the tensor between them (convBnActThenDepthwise,
 * squeeze_excitation.ts batchNormActSqueezeExcitationProject; items 21, 30), a residual block's
 * projection BatchNorm, stochastic depth and residual sum run as one (batchNormResidual; item 35),
 * and in evaluation the depthwise stage
 * with the expansion's SiLU and SE's squeeze (depthwiseStageForEval; item 27). "off": each layer its
 * own op (tests: the gradients are bit-identical either way; evaluation differs at round-off).
 */
export function setLayerFusion(mode: KernelMode): void {
  layerFusion = mode;
}

/** The native CPU backend, where this project's kernels run and layer fusion is on; else null. */
export function fusingNativeOps(): NativeKernelBackend | null {
  return layerFusion === "auto" ? kernelCpuOps() : null;
}

export function usingJsKernels(): boolean {
  return kernelMode === "auto" && tf.getBackend() === "cpu";
}

/** x [m, k] @ w [k, n]: the classifier, the head, and every 1x1 convolution. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return usingJsKernels() ? jsMatMul(x, w) : tf.matMul(x, w);
}

/**
 * 1x1 convolution, weight [in, out]: a matrix product over [N*H*W, in] on the 'cpu' backend (~5x
 * faster there than its conv2d kernel even before the plain-JS kernels) and on the native one (TF's
 * CPU Conv2DBackpropInput took 3x the time of the two MatMuls that replace it); conv2d elsewhere
 * (WebGL, WebGPU: their conv kernels are the tuned path).
 */
export function pointwiseConv(x: tf.Tensor4D, weight: tf.Tensor2D): tf.Tensor4D {
  const backend = tf.getBackend();
  const [n, h, w, c] = x.shape;
  const out = weight.shape[1];
  if (backend !== "cpu" && backend !== "tensorflow") return tf.conv2d(x, tf.reshape(weight, [1, 1, c, out]), 1, "valid");
  if (usingJsKernels()) return tf.reshape(dense(tf.reshape(x, [n * h * w, c]), weight), [n, h, w, out]);
  // One differentiable op keeping only the 2-D view of x and the weight (TF.js's tape would keep
  // four tensors for the two reshapes and the product); the same products forward and backward.
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x2d = tf.reshape(args[0] as tf.Tensor, [n * h * w, c]) as tf.Tensor2D;
    const w2d = args[1] as tf.Tensor2D;
    (args[2] as tf.GradSaveFunc)([x2d]);
    return {
      value: pointwiseProducts(x2d, w2d, [n, h, w, out]),
      // In a tidy: TF.js runs a custom gradient in the scope of the whole backward pass, which
      // would keep every intermediate (here the 2-D product under dx's reshape) until it ends.
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => pointwiseGradients(dy, saved[0] as tf.Tensor2D, w2d, x.shape)),
    };
  });
  return op(x, weight) as tf.Tensor4D;
}

/** The 1x1 convolution's forward on the native and TF.js-ops paths: x2d [N*H*W, in] @ w [in, out], as [N, H, W, out]. */
export function pointwiseProducts(x2d: tf.Tensor2D, w2d: tf.Tensor2D, outShape: [number, number, number, number]): tf.Tensor4D {
  return tf.reshape(tf.matMul(x2d, w2d), outShape) as tf.Tensor4D;
}

/** Its gradients [dx (inShape), dw] from dy [N, H, W, out] and the forward's x2d (squeeze_excitation.ts' fused op too). */
export function pointwiseGradients(dy: tf.Tensor, x2d: tf.Tensor2D, w2d: tf.Tensor2D, inShape: [number, number, number, number]): [tf.Tensor, tf.Tensor] {
  const dy2d = tf.reshape(dy, [x2d.shape[0], w2d.shape[1]]) as tf.Tensor2D;
  return [tf.reshape(tf.matMul(dy2d, w2d, false, true), inShape), tf.matMul(x2d, dy2d, true, false)];
}

/**
 * k x k convolution (weight HWIO) with PyTorch's padding: (k-1)/2 on every side. TF's 'same' pads
 * the extra row and column at the bottom/right only, which shifts every stride-2 output by one pixel.
 */
export function symmetricConv(x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  if (usingJsKernels()) return jsConv(x, weight, stride);
  const { input, padding } = withSymmetricPadding(x, weight.shape[0], stride);
  return tf.conv2d(input, weight, stride, padding);
}

/** Depthwise k x k convolution (weight [k, k, C, 1]) with PyTorch's symmetric padding. */
export function symmetricDepthwiseConv(x: tf.Tensor4D, weight: tf.Tensor4D, stride: number): tf.Tensor4D {
  if (usingJsKernels()) return jsDepthwiseConv(x, weight, stride);
  const native = nativeOps();
  // Stride 2 always (TF's 'same' pads differently from PyTorch); stride 1 where this project's kernels run.
  if (native !== null && (stride !== 1 || customOpsActive())) return nativeDepthwiseConvPadded(native, x, weight, stride, symmetricPad(weight.shape[0]));
  const { input, padding } = withSymmetricPadding(x, weight.shape[0], stride);
  return tf.depthwiseConv2d(input, weight, stride, padding);
}

/**
 * PyTorch pads (k-1)/2 on every side. At stride 1 TF's 'same' does exactly that (for odd k); at
 * stride 2 'same' puts the extra pixel bottom/right, so the input is zero-padded explicitly and
 * convolved 'valid'. (Numeric explicit padding would also do, but the native tfjs-node backend
 * accepts only 'same' and 'valid'.)
 */
function withSymmetricPadding(x: tf.Tensor4D, kernel: number, stride: number): { input: tf.Tensor4D; padding: "same" | "valid" } {
  if (stride === 1 && kernel % 2 === 1) return { input: x, padding: "same" };
  const p = symmetricPad(kernel);
  return { input: tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), padding: "valid" };
}

/** SiLU (swish): x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}

/** The four tensors of one torch.nn.BatchNorm2d, plus its constants. */
export interface BatchNormState {
  /** The variables, or (when a block is recomputed for its gradient) tensors standing in for them. */
  gamma: tf.Tensor;
  beta: tf.Tensor;
  runningMean: tf.Variable;
  runningVar: tf.Variable;
  eps: number;
  /** PyTorch convention: running = (1 - momentum) * running + momentum * batch. */
  momentum: number;
}

export interface BatchNormMode {
  /** Batch statistics (true) or running statistics (false) for normalizing. */
  training: boolean;
  /** In training mode, also write the updated running statistics into the buffers. */
  updateRunningStats: boolean;
  /** Evaluation on the native CPU engine: each convolution's BatchNorm folded once per evaluation pass (native_eval.ts); absent, once per call. */
  folds?: EvalFolds;
}

/**
 * BatchNorm2d over NHWC with PyTorch's semantics, then SiLU if `activation`. Training normalizes
 * with the biased batch variance and folds the unbiased one into running_var. The buffers are
 * assigned here, inside the forward pass, so the update happens even when the forward runs under
 * tf.variableGrads; the assigned values are off the gradient path and the variables keep their
 * data when tidy disposes the temporaries.
 */
export function batchNormAct(x: tf.Tensor4D, bn: BatchNormState, mode: BatchNormMode, activation: boolean): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const count = n * h * w;
  if (mode.training) checkTrainingCount(x);
  if (usingJsKernels()) return tf.reshape(jsBatchNormAct(tf.reshape(x, [count, c]), bn, mode, activation), [n, h, w, c]);
  const native = nativeOps();
  if (native !== null && mode.training) return nativeTrainingBatchNormAct(native, x, bn, mode.updateRunningStats, activation);
  // Evaluation: libtensorflow's inference FusedBatchNorm is slow on the CPU (native_batchnorm.ts); a GPU keeps it (one launch).
  if (native !== null && !nativeOnGpu(native)) return nativeInferenceBatchNormAct(native, x, bn, activation);
  let mean: tf.Tensor = bn.runningMean;
  let variance: tf.Tensor = bn.runningVar;
  if (mode.training) {
    ({ mean, variance } = tf.moments(x, [0, 1, 2]));
    if (mode.updateRunningStats) {
      const m = bn.momentum;
      bn.runningMean.assign(tf.add(tf.mul(bn.runningMean, 1 - m), tf.mul(mean, m)));
      bn.runningVar.assign(tf.add(tf.mul(bn.runningVar, 1 - m), tf.mul(variance, (m * count) / (count - 1))));
    }
  }
  const y = tf.batchNorm4d(x, mean as tf.Tensor1D, variance as tf.Tensor1D, bn.beta as tf.Tensor1D, bn.gamma as tf.Tensor1D, bn.eps);
  if (!activation) return y;
  // Evaluation on a GPU (the running statistics, no gradient): SiLU in one pass.
  return native !== null ? nativeSilu(native, y) : silu(y);
}

/** PyTorch refuses this too: the unbiased variance of one value is undefined. */
export function checkTrainingCount(x: tf.Tensor4D): void {
  const [n, h, w] = x.shape;
  if (n * h * w <= 1) throw new Error(`${WHERE}: BatchNorm in training mode needs more than 1 value per channel, got input shape [${x.shape.join(", ")}]`);
}

/** One convolution of the backbone: its kind, weight (pointwise [in, out], depthwise [k, k, C, 1], full HWIO) and stride. */
export interface ConvSpec {
  kind: ConvKind;
  weight: tf.Tensor;
  stride: number;
}

function convolve(x: tf.Tensor4D, conv: ConvSpec): tf.Tensor4D {
  if (conv.kind === "pointwise") return pointwiseConv(x, conv.weight as tf.Tensor2D);
  if (conv.kind === "depthwise") return symmetricDepthwiseConv(x, conv.weight as tf.Tensor4D, conv.stride);
  return symmetricConv(x, conv.weight as tf.Tensor4D, conv.stride);
}

/**
 * Convolution + BatchNorm (+ SiLU) of x, or of x scaled per sample and channel by inputScale [N, C]
 * (squeeze-excitation's gate, in evaluation). Evaluation on the native CPU engine folds BatchNorm
 * into the convolution (native_eval.ts) and runs it with its shift and SiLU as one oneDNN op, except
 * a 1x1 convolution without SiLU or over fewer than 4x4 positions: one _FusedMatMul with the shift
 * as bias; with TensorFlow's oneDNN on, a 1x1 convolution over more positions than it has outputs
 * takes inputScale into per-sample weights instead of scaling x (foldsInputScale).
 */
export function convBnAct(x: tf.Tensor4D, conv: ConvSpec, bn: BatchNormState, mode: BatchNormMode, activation: boolean, inputScale: tf.Tensor2D | null = null): tf.Tensor4D {
  const native = nativeCpuOps();
  if (native === null || mode.training) {
    return batchNormAct(convolve(inputScale === null ? x : scaleChannels(x, inputScale), conv), bn, mode, activation);
  }
  return tf.tidy(() => {
    const { weight, filter, shift } = foldFor(conv, bn, mode);
    const positions = x.shape[1] * x.shape[2];
    let z: tf.Tensor4D;
    if (inputScale !== null && conv.kind === "pointwise" && foldsInputScale(positions, weight.shape[1] as number, oneDnnKernels(native))) {
      z = nativeScaledPointwiseBias(native, x, inputScale, weight as tf.Tensor2D, shift);
    } else {
      const input = inputScale === null ? x : scaleChannels(x, inputScale);
      if (oneDnnKernels(native) && fusesOnCpu(conv.kind, activation, positions)) return nativeFusedConv(native, input, filter, shift, conv.stride, activation);
      z = conv.kind === "pointwise" ? nativePointwiseBias(native, input, weight as tf.Tensor2D, shift) : tf.add(convolve(input, { ...conv, weight }), shift) as tf.Tensor4D;
    }
    return activation ? nativeSilu(native, z) : z;
  });
}

/** The convolution with its BatchNorm folded in: the evaluation pass's (EvalFolds), else folded now. */
function foldFor(conv: ConvSpec, bn: BatchNormState, mode: BatchNormMode): FoldedConv {
  return mode.folds !== undefined ? mode.folds.get(conv.kind, conv.weight, bn) : foldBatchNorm(conv.kind, conv.weight, bn);
}

/** A convolution with its BatchNorm (+ SiLU). */
export interface ConvBnActUnit {
  conv: ConvSpec;
  bn: BatchNormState;
  activation: boolean;
}

/**
 * An expanded MBConv block's first half: a convolution + BatchNorm (+ SiLU), then the depthwise
 * convolution + BatchNorm (+ SiLU). In training where this project's kernels run (fusingNativeOps),
 * the first BatchNorm and the depthwise convolution are one op that recomputes the depthwise
 * convolution's input in the backward pass instead of keeping it (native_conv.ts); elsewhere, and
 * in evaluation, convBnAct twice.
 */
export function convBnActThenDepthwise(x: tf.Tensor4D, first: ConvBnActUnit, depthwise: ConvBnActUnit, mode: BatchNormMode): tf.Tensor4D {
  if (!mode.training || depthwise.conv.kind !== "depthwise" || fusingNativeOps() === null) {
    return convBnAct(convBnAct(x, first.conv, first.bn, mode, first.activation), depthwise.conv, depthwise.bn, mode, depthwise.activation);
  }
  return batchNormAct(depthwiseBeforeBatchNorm(x, first, depthwise.conv, mode), depthwise.bn, mode, depthwise.activation);
}

/**
 * Training: the block's depthwise convolution output before its BatchNorm, of x through the
 * expansion (convolution + BatchNorm + SiLU) when `first` is given: as convBnActThenDepthwise's
 * fused op where this project's kernels run, else the layer ops.
 */
export function depthwiseBeforeBatchNorm(x: tf.Tensor4D, first: ConvBnActUnit | null, depthwise: ConvSpec, mode: BatchNormMode): tf.Tensor4D {
  if (first === null) return convolve(x, depthwise);
  const native = mode.training && depthwise.kind === "depthwise" ? fusingNativeOps() : null;
  if (native === null) return convolve(convBnAct(x, first.conv, first.bn, mode, first.activation), depthwise);
  const e = convolve(x, first.conv);
  checkTrainingCount(e);
  const weight = depthwise.weight as tf.Tensor4D;
  return nativeBatchNormActDepthwise(native, e, first.bn, mode.updateRunningStats, first.activation, weight, depthwise.stride, symmetricPad(weight.shape[0]));
}

/**
 * Evaluation's expansion (if any) and depthwise convolution, each + BatchNorm + SiLU, with
 * squeeze-excitation's squeeze (the mean of the output over H and W), where this project's kernels
 * run on the native CPU engine (native_eval_stage.ts): one op where the expansion's weights are within EXPAND_FUSION_MAX_WEIGHTS
 * (nativeExpandDepthwiseSilu), else the expansion without its SiLU (nativeExpansionBias), then one op
 * for the rest (nativeDepthwiseSilu). null elsewhere, and in training: the caller takes convBnAct's path.
 */
export function depthwiseStageForEval(x: tf.Tensor4D, first: ConvBnActUnit | null, depthwise: ConvBnActUnit, mode: BatchNormMode): { y: tf.Tensor4D; pooled: tf.Tensor2D } | null {
  const native = mode.training ? null : fusingNativeOps();
  if (native === null || depthwise.conv.kind !== "depthwise" || !depthwise.activation) return null;
  if (first !== null && (first.conv.kind !== "pointwise" || !first.activation)) return null;
  return tf.tidy(() => {
    const d = foldFor(depthwise.conv, depthwise.bn, mode);
    if (first !== null && fusesExpansion(...(first.conv.weight.shape as [number, number]))) {
      return nativeExpandDepthwiseSilu(native, x, foldFor(first.conv, first.bn, mode), d.weight as tf.Tensor4D, d.shift, depthwise.conv.stride);
    }
    const e = first === null ? x : nativeExpansionBias(native, x, foldFor(first.conv, first.bn, mode));
    return nativeDepthwiseSilu(native, e, d.weight as tf.Tensor4D, d.shift, depthwise.conv.stride, first !== null);
  });
}

/**
 * Mean over H and W of NHWC, as [N, C]. Its gradient is dy / (H * W) tiled over H and W (one Tile):
 * TF.js's own Mean gradient builds a ones tensor of x's shape in JavaScript, uploads it and runs a
 * Mul and a RealDiv over it (at 240x240 batch 16 the head's pooling took 10 ms a step that way). The
 * same bits: dy * 1 / n is dy / n.
 */
export function spatialMean(x: tf.Tensor4D): tf.Tensor2D {
  if (usingJsKernels()) return jsSpatialMean(x);
  const [n, h, w, c] = x.shape;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.mean(args[0] as tf.Tensor, [1, 2]),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.tile(tf.reshape(tf.div(dy, h * w), [n, 1, 1, c]), [1, h, w, 1])),
  }));
  return op(x) as tf.Tensor2D;
}

/** x [N, H, W, C] times a per-sample, per-channel scale [N, C] (the SE gate). */
export function scaleChannels(x: tf.Tensor4D, scale: tf.Tensor2D): tf.Tensor4D {
  const [n, , , c] = x.shape;
  if (!usingJsKernels()) return tf.mul(x, tf.reshape(scale, [n, 1, 1, c]));
  return jsScaleChannels(x, scale);
}

/**
 * Inverted-dropout mask: each entry is 0 with probability `dropProb`, else 1/(1-dropProb), as in
 * torch.nn.Dropout and in torchvision's stochastic_depth (row mode uses one entry per sample).
 */
export function dropMask(size: number, dropProb: number, rng: Rng): Float32Array {
  if (!(dropProb >= 0 && dropProb < 1)) {
    throw new Error(`${WHERE}: drop probability must be in [0, 1), got ${dropProb}`);
  }
  const keep = 1 - dropProb;
  const scale = 1 / keep;
  const mask = new Float32Array(size);
  for (let i = 0; i < size; i++) mask[i] = rng.next() < keep ? scale : 0;
  return mask;
}

/**
 * A residual block's output: y times a per-sample factor (stochastic depth's row mask; null: none)
 * plus the block input x. With TF.js ops one differentiable op whose backward is dy * mask for y and
 * dy itself for x (TF.js's generic gradients add a cast and two reshapes); same values.
 */
export function residualAdd(y: tf.Tensor4D, x: tf.Tensor4D, perSample: Float32Array | null): tf.Tensor4D {
  if (usingJsKernels()) return tf.add(perSample === null ? y : scaleRows(y, perSample), x);
  const n = y.shape[0];
  if (perSample !== null && perSample.length !== n) throw new Error(`${WHERE}: row mask has ${perSample.length} entries for a batch of ${n}`);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [yIn, xIn] = args as tf.Tensor[];
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const mask = perSample === null ? null : tf.tensor(perSample, [n, 1, 1, 1], "float32");
    save(mask === null ? [] : [mask]);
    return {
      value: tf.add(mask === null ? yIn : tf.mul(yIn, mask), xIn) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [saved.length === 0 ? dy.clone() : tf.mul(dy, saved[0]), dy.clone()],
    };
  });
  return op(y, x) as tf.Tensor4D;
}

let residualFusion = true;

/** false: batchNormResidual runs its three ops even where layer fusion runs (bench/residual_fusion.ts' baseline). */
export function setResidualFusion(on: boolean): void {
  residualFusion = on;
}

/**
 * A residual block's output from its projection's output y before BatchNorm: residualAdd(batchNormAct(y),
 * x, perSample), as one op in training where layer fusion runs (native_batchnorm.ts
 * customBatchNormResidual; the same bits).
 */
export function batchNormResidual(y: tf.Tensor4D, bn: BatchNormState, mode: BatchNormMode, activation: boolean, x: tf.Tensor4D, perSample: Float32Array | null): tf.Tensor4D {
  const nb = mode.training && !activation && residualFusion ? fusingNativeOps() : null;
  if (nb === null) return residualAdd(batchNormAct(y, bn, mode, activation), x, perSample);
  checkTrainingCount(y);
  return customBatchNormResidual(nb, y, bn, mode.updateRunningStats, perSample, x);
}

/** x times a per-sample factor (stochastic depth's row mask, one entry per sample). */
export function scaleRows<T extends tf.Tensor>(x: T, perSample: Float32Array): T {
  const n = x.shape[0];
  if (perSample.length !== n) throw new Error(`${WHERE}: row mask has ${perSample.length} entries for a batch of ${n}`);
  const broadcastShape = [n, ...x.shape.slice(1).map(() => 1)];
  if (!usingJsKernels()) return tf.mul(x, tf.tensor(perSample, broadcastShape, "float32"));
  // The 'cpu' backend broadcasts [N, 1, 1, 1] through its slow generic path; a full-size
  // constant takes the fast one.
  const rowSize = x.size / n;
  const full = new Float32Array(x.size);
  for (let i = 0; i < n; i++) full.fill(perSample[i], i * rowSize, (i + 1) * rowSize);
  return tf.mul(x, tf.tensor(full, x.shape, "float32"));
}
