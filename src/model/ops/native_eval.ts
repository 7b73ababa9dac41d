// Evaluation on the native CPU engine: convolution + BatchNorm (+ SiLU) with the BatchNorm folded
// into the convolution. With the running statistics, BatchNorm is y = conv(x, w) * alpha + shift
// per output channel (native_batchnorm.ts inferenceScaleShift), which equals conv(x, w * alpha) +
// shift: the scaling moves from the activations (a pass over them) to the weights (a few thousand
// values). The folded convolution then runs with its shift and SiLU as one op of oneDNN, the
// library TF's x86 build carries for its graph rewrites (nativeFusedConv: one pass over the output
// where the Eigen ops take up to three, and SiLU's Eigen kernel is compiled for AVX only in TF's
// wheel); a 1x1 convolution without SiLU, or over fewer than 4x4 positions, runs faster as one
// _FusedMatMul with the shift as its fused BiasAdd (fusesOnCpu). Without oneDNN (turned off, or a
// build without the kernel) every convolution takes the Eigen path: _FusedMatMul, or the
// convolution + Add, then SoftplusGrad for SiLU. The folding and the fusing move numbers at float
// round-off (the products' order), like any change of summation order.
//
// Where this project's kernels run (engine/custom_ops.ts), an MBConv block's expansion runs with its
// shift only, and one op of theirs takes its SiLU, the depthwise convolution with its shift and
// SiLU, and squeeze-excitation's mean: oneDNN's SiLU post-op cost more than the products on AVX2;
// with expansion weights up to EXPAND_FUSION_MAX_WEIGHTS, the expansion runs inside that op too (native_eval_stage.ts).
//
// Squeeze-excitation's gate runs as 1 op of this project's kernels, or 5 of TensorFlow's without them
// (nativeSqueezeGate), and the projection after it takes
// the gate into per-sample weights, as one oneDNN batched product, where that measured faster
// (nativeScaledPointwiseBias, foldsInputScale): the pass that scales the activations becomes one
// over a few weights per sample.
//
// The fused ops' fused_ops attribute is a list of strings and _MklNativeFusedConv2D's TArgs a list of
// types, which the stock tfjs-node binding cannot set; tools/native/patch_binding.py adds both when
// `make native` compiles it. An engine built before that patch is refused when the backend starts
// (engine/backend.ts asks fusedEvalProblem), with the command that rebuilds it. Not used on a GPU
// (UNTESTED there: whether TF has a GPU _FusedMatMul kernel for BiasAdd was never checked), nor in
// training, where BatchNorm uses the batch's statistics.
//
// The folding itself is ~6 small ops per convolution (69 in B1: ~400 ops, ~10% of a 240x240
// evaluation batch of 16 on the AMD guest). An evaluation pass does not change the variables, so
// train/loop.ts' evaluate hands the forward an EvalFolds, which folds each convolution once per pass
// and frees the folded weights when the pass ends; the same ops on the same values, so the logits
// are bit-identical to folding per batch (test/native_eval.test.ts).
//
// May touch: @tensorflow/tfjs, the native backend (native_backend.ts) and, read only, /proc/cpuinfo
// and the environment (util/cpu_info.ts). Called only by ops/layers.ts; train/loop.ts (and
// bench/train_speed.ts) create and free the EvalFolds of an evaluation pass.
import * as tf from "@tensorflow/tfjs";
import { floatType, nativeBatchMatMul, NativeKernelBackend, runNativeOp } from "./native_backend";
import { inferenceScaleShift, nativeSilu } from "./native_batchnorm";
import { symmetricPad } from "./padding";
import { convAttrs } from "./native_conv";
import { tensorflowBool, tensorflowOneDnnOn } from "../../util/cpu_info";
import { customOpsActive } from "../../engine/custom_ops";
import type { BatchNormState } from "./layers";
import type { SqueezeExcitationParams } from "./squeeze_excitation";

export type ConvKind = "full" | "depthwise" | "pointwise";

/**
 * A convolution's weight with its BatchNorm folded in, the same weight as the HWIO filter oneDNN's
 * fused convolution takes (fusedFilter: a view, no copy), and the per-channel shift left to add.
 */
export interface FoldedConv {
  weight: tf.Tensor;
  filter: tf.Tensor4D;
  shift: tf.Tensor1D;
}

/** conv(x, w) -> BatchNorm (running statistics) as conv(x, w * alpha) + shift. */
export function foldBatchNorm(kind: ConvKind, weight: tf.Tensor, bn: BatchNormState): FoldedConv {
  return tf.tidy(() => {
    const { alpha, shift } = inferenceScaleShift(bn);
    const folded = foldScale(kind, weight, alpha);
    return { weight: folded, filter: fusedFilter(kind, folded), shift };
  });
}

/** A pointwise [in, out] or depthwise [k, k, C, 1] weight as the HWIO filter of nativeFusedConv ([1, 1, in, out], [k, k, 1, C]); a full one is HWIO already. */
export function fusedFilter(kind: ConvKind, weight: tf.Tensor): tf.Tensor4D {
  const [a, b, c] = weight.shape as number[];
  return (kind === "pointwise" ? tf.reshape(weight, [1, 1, a, b]) : kind === "depthwise" ? tf.reshape(weight, [a, b, 1, c]) : weight) as tf.Tensor4D;
}

function disposeFolded(folded: FoldedConv): void {
  tf.dispose([folded.weight, folded.filter, folded.shift]);
}

/**
 * The folded weights of one evaluation pass, keyed by the convolution's weight. Each entry also
 * records the data of the five tensors it was folded from: a variable's assign() replaces its data,
 * so an entry used after a training step or a checkpoint load is folded again, never served stale.
 * dispose() frees every folded tensor; the owner calls it when the pass ends.
 */
export class EvalFolds {
  private readonly entries = new Map<tf.Tensor, { from: object[]; folded: FoldedConv }>();

  get(kind: ConvKind, weight: tf.Tensor, bn: BatchNormState): FoldedConv {
    const from = [weight, bn.gamma, bn.beta, bn.runningMean, bn.runningVar].map((t) => t.dataId);
    const hit = this.entries.get(weight);
    if (hit !== undefined && hit.from.every((d, i) => d === from[i])) return hit.folded;
    if (hit !== undefined) disposeFolded(hit.folded);
    // Kept: the forward's tidy scopes would free them after the first batch.
    const folded = foldBatchNorm(kind, weight, bn);
    for (const t of [folded.weight, folded.filter, folded.shift]) tf.keep(t);
    this.entries.set(weight, { from, folded });
    return folded;
  }

  /** Folded convolutions held (for tests). */
  get size(): number {
    return this.entries.size;
  }

  dispose(): void {
    for (const { folded } of this.entries.values()) disposeFolded(folded);
    this.entries.clear();
  }
}

/** The convolution's weight with each output channel scaled by alpha ([C_out]). */
export function foldScale(kind: ConvKind, weight: tf.Tensor, alpha: tf.Tensor1D): tf.Tensor {
  // pointwise [in, out] and full HWIO [k, k, in, out]: out is the last axis; depthwise [k, k, C, 1]: C is the third.
  return kind === "depthwise" ? tf.mul(weight, tf.reshape(alpha, [1, 1, -1, 1])) : tf.mul(weight, alpha);
}

/**
 * The first line of why this engine's binding cannot set the list attributes evaluation uses, or
 * null when it can: an engine built before tools/native/patch_binding.py (string and type lists)
 * fails here. _FusedMatMul (string list) and IdentityN (type list) exist in every CPU build.
 */
export function fusedEvalProblem(nb: NativeKernelBackend): string | null {
  try {
    tf.tidy(() => {
      nativePointwiseBias(nb, tf.ones([1, 1, 1, 2]), tf.ones([2, 1]), tf.zeros([1])).dataSync();
      const typeList = [{ name: "T", type: nb.binding.TF_ATTR_TYPE, value: [nb.binding.TF_FLOAT] as unknown as number }];
      runNativeOp(nb, "IdentityN", typeList, [tf.ones([1])]).dataSync();
    });
    return null;
  } catch (e) {
    return (e instanceof Error ? e.message : String(e)).split("\n")[0];
  }
}

let oneDnnRuns: boolean | undefined;

/**
 * Whether evaluation runs oneDNN's kernels by name: the fused convolution (nativeFusedConv) and the
 * batched product of the folded gate (nativeScaledPointwiseBias). TF's oneDNN must not be turned
 * off (TF_ENABLE_ONEDNN_OPTS 0 or false: the ops still run, 5-25x slower) and this libtensorflow
 * must have the kernels (x86 builds; checked once per process). Otherwise evaluation runs the
 * Eigen path (_FusedMatMul, the convolutions, an Add and SoftplusGrad): the same math, with other
 * float round-off.
 */
export function oneDnnKernels(nb: NativeKernelBackend): boolean {
  if (tensorflowBool(process.env.TF_ENABLE_ONEDNN_OPTS) === false) return false;
  if (oneDnnRuns === undefined) {
    try {
      tf.tidy(() => {
        nativeFusedConv(nb, tf.ones([1, 1, 1, 2]), tf.ones([1, 1, 2, 1]), tf.zeros([1]), 1, true).dataSync();
        nativeBatchMatMul(nb, tf.ones([1, 1, 2]), tf.ones([1, 2, 1]), true).dataSync();
      });
      oneDnnRuns = true;
    } catch {
      oneDnnRuns = false;
    }
  }
  return oneDnnRuns;
}

/** 1x1 convolution (weight [in, out]) + per-channel bias as one _FusedMatMul over the [N*H*W, in] view of x. */
export function nativePointwiseBias(nb: NativeKernelBackend, x: tf.Tensor4D, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const out = fusedMatMul(nb, ["BiasAdd"], tf.reshape(x, [n * h * w, c]) as tf.Tensor2D, weight, bias);
    return tf.reshape(out, [n, h, w, weight.shape[1]]);
  });
}

/** x [m, k] @ w [k, n] + bias [n], then fusedOps[1] if given ("Sigmoid"), as one _FusedMatMul (Eigen). */
function fusedMatMul(nb: NativeKernelBackend, fusedOps: ["BiasAdd"] | ["BiasAdd", "Sigmoid"], x: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  const B = nb.binding;
  const attrs = [
    floatType(nb),
    { name: "transpose_a", type: B.TF_ATTR_BOOL, value: false },
    { name: "transpose_b", type: B.TF_ATTR_BOOL, value: false },
    { name: "num_args", type: B.TF_ATTR_INT, value: 1 },
    // A string list: only the patched binding accepts an array here (the type says string).
    { name: "fused_ops", type: B.TF_ATTR_STRING, value: fusedOps as unknown as string },
    { name: "epsilon", type: B.TF_ATTR_FLOAT, value: 1e-4 },
  ];
  return runNativeOp(nb, "_FusedMatMul", attrs, [x, w, bias]) as tf.Tensor2D;
}

/**
 * Squeeze-excitation's gate [N, C] in evaluation (no gradient) on the CPU: the spatial mean, fc1 +
 * bias as one _FusedMatMul, SiLU as one SoftplusGrad, fc2 + bias + sigmoid as one _FusedMatMul.
 * 5 ops where TF.js's run 12, with 2-D matrix products where TF.js runs BatchMatMulV2 and its
 * reshapes (0.25 ms each for these tiny products with two threads, twice their one-thread time).
 * Where this project's kernels run, the mean and one op (customSqueezeGate).
 */
export function nativeSqueezeGate(nb: NativeKernelBackend, x: tf.Tensor4D, p: SqueezeExcitationParams, given: tf.Tensor2D | null = null): tf.Tensor2D {
  return tf.tidy(() => {
    // `given`: the mean already taken (native_eval_stage.ts).
    const pooled = given ?? nativeSpatialMean(nb, x);
    if (squeezeGateKernelOn()) return customSqueezeGate(nb, pooled, p).gate;
    const a = fusedMatMul(nb, ["BiasAdd"], pooled, p.w1, p.b1);
    return fusedMatMul(nb, ["BiasAdd", "Sigmoid"], nativeSilu(nb, a), p.w2, p.b2);
  });
}

/** x's mean over H and W [N, C] as TensorFlow's Mean, the op TF.js's tf.mean runs (the same bits) without the Cast it adds. */
export function nativeSpatialMean(nb: NativeKernelBackend, x: tf.Tensor): tf.Tensor2D {
  const attrs = [floatType(nb), { name: "Tidx", type: nb.binding.TF_ATTR_TYPE, value: nb.binding.TF_INT32 }, { name: "keep_dims", type: nb.binding.TF_ATTR_BOOL, value: false }];
  return runNativeOp(nb, "Mean", attrs, [x, tf.tensor1d([1, 2], "int32")]) as tf.Tensor2D;
}

let squeezeGateKernel = true;

/**
 * false: squeeze-excitation's gate as TensorFlow's ops even where this project's kernels run, as
 * before item 38 (bench/se_gate.ts; tests). Default true.
 */
export function setSqueezeGateKernel(on: boolean): void {
  squeezeGateKernel = on;
}

/** Whether the gate runs as customSqueezeGate: this project's kernels are loaded, and setSqueezeGateKernel left it on. */
export function squeezeGateKernelOn(): boolean {
  return squeezeGateKernel && customOpsActive();
}

/**
 * Squeeze-excitation's gate from the spatial mean, sigmoid(silu(pooled @ w1 + b1) @ w2 + b2), as one
 * op of this project's kernels (tools/native/ops/squeeze_gate.cc, item 38), for evaluation and
 * training; a = pooled @ w1 + b1 is what its gradient op needs besides the gate.
 */
export function customSqueezeGate(nb: NativeKernelBackend, pooled: tf.Tensor, p: { w1: tf.Tensor; b1: tf.Tensor; w2: tf.Tensor; b2: tf.Tensor }): { gate: tf.Tensor2D; a: tf.Tensor2D } {
  const [gate, a] = nb.executeMultipleOutputs("BiasInitSqueezeGate", [], [pooled, p.w1, p.b1, p.w2, p.b2], 2);
  return { gate: gate as tf.Tensor2D, a: a as tf.Tensor2D };
}

/**
 * The gradients through customSqueezeGate, one op: from the gate's gradient, the pooled input's
 * gradient divided by `positions` (H * W: the mean's gradient at each position) and fc1's and fc2's
 * weight and bias gradients, [shift, dw1, db1, dw2, db2].
 */
export function customSqueezeGateGrad(nb: NativeKernelBackend, dGate: tf.Tensor, pooled: tf.Tensor, a: tf.Tensor, gate: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor, positions: number): tf.Tensor[] {
  return nb.executeMultipleOutputs("BiasInitSqueezeGateGrad", [{ name: "positions", type: nb.binding.TF_ATTR_INT, value: positions }], [dGate, pooled, a, gate, w1, w2], 5);
}

export type FoldInputScale = "auto" | "always" | "never";
let foldInputScale: FoldInputScale = "auto";

/** foldsInputScale's mode: "auto" (the measured rule below), or "always"/"never" (tests, experiments). */
export function setFoldInputScale(mode: FoldInputScale): void {
  foldInputScale = mode;
}

/** The mode setFoldInputScale set (training's fold, se_projection_fold.ts, follows it too). */
export function foldInputScaleMode(): FoldInputScale {
  return foldInputScale;
}

/**
 * The fewest positions (H x W) from which the gate is folded into the projection's weights where
 * TensorFlow's oneDNN optimizations are off but its kernels run by name (oneDnnKernels). Measured
 * on B1's projections at 240x240 batch 16 (AMD EPYC with AVX2 only, 2 threads, 2026-12-04, three
 * runs of 9; ms per call, folded as _MklBatchMatMulV2 against x scaled + _FusedMatMul):
 * 120x120 9.1-9.6 against 14.6-23.3 (32->16), 7.8-8.4 against 8.7-8.9 (16->16); 60x60 5.8-6.8
 * against 7.9-12.8, 8.5-9.2 against 11.8-14.2; 30x30 mixed (0.7-1.3x), 15x15 0.8-1.4x, 8x8 0.6-1.0x.
 */
export const FOLD_MIN_POSITIONS = 3600;

/**
 * Whether a 1x1 convolution of x [N, H, W, C] scaled per sample and channel (squeeze-excitation's
 * gate) takes the scale into per-sample weights (nativeScaledPointwiseBias), measured per CPU:
 * - TensorFlow's oneDNN on (its default on CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX; its eager
 *   op rewrite, mkl_eager_op_rewrite.cc, runs BatchMatMulV2 as _MklBatchMatMulV2): where those
 *   weights [N, C, C_out] are smaller than x, i.e. H * W > C_out. AMD EPYC with AVX-512, B1 at
 *   240x240 batch 16: from 15x15 up 1.0-2.0x faster folded; at 8x8 0.68-1.10x, at 2x2 and 1x1
 *   (32x32 input) 0.03-0.2x;
 * - oneDNN's optimizations off (TensorFlow's default on AVX2-only CPUs such as FACTS.md's) but its
 *   kernels runnable by name (`kernels`, oneDnnKernels): from FOLD_MIN_POSITIONS up;
 * - neither: never. The batched product would be Eigen's, built without AVX2 (0.38-1.32x per shape
 *   on the AVX2 guest, 295 against 213 ms summed).
 */
export function foldsInputScale(positions: number, outChannels: number, kernels: boolean, oneDnn: boolean = tensorflowOneDnnOn()): boolean {
  if (foldInputScale !== "auto") return foldInputScale === "always";
  if (oneDnn) return positions > outChannels;
  return kernels && positions >= FOLD_MIN_POSITIONS;
}

/**
 * conv1x1(x * scale) + bias, x [N, H, W, C], scale [N, C], weight [C, C_out], as
 * x[n] @ (scale[n] * weight) + bias: one batched product over the [N, H*W, C] view of x with
 * weights scaled per sample, which spares the pass over x that scaling it would take. oneDNN's
 * kernel where it runs by name (oneDnnKernels), else TensorFlow's BatchMatMulV2.
 */
export function nativeScaledPointwiseBias(nb: NativeKernelBackend, x: tf.Tensor4D, scale: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const perSample = tf.mul(tf.reshape(scale, [n, c, 1]), weight);
    const out = nativeBatchMatMul(nb, tf.reshape(x, [n, h * w, c]), perSample, oneDnnKernels(nb));
    return tf.reshape(tf.add(out, bias), [n, h, w, weight.shape[1]]) as tf.Tensor4D;
  });
}

/**
 * The fewest output positions (H x W) at which a 1x1 convolution + SiLU runs faster as oneDNN's
 * fused convolution than as _FusedMatMul + SoftplusGrad. Measured on B1's shapes (AMD EPYC guest,
 * 2 threads, 2026-12-03): 1.1-2.1x faster from 4x4 up (except 0.86x at 8x8 192->1152), 0.16-0.98x
 * at 2x2 and 1x1, where oneDNN's convolution costs up to 6x the matrix product.
 */
export const FUSED_CONV_MIN_POSITIONS = 16;

/**
 * Whether nativeFusedConv runs this convolution: every depthwise and full one (1.2-2.9x faster
 * with SiLU on B1's depthwise shapes at both input sizes, 0.88-0.94x on three of the 28), and a 1x1
 * one followed by SiLU over at least FUSED_CONV_MIN_POSITIONS positions; a 1x1 convolution
 * without SiLU runs faster as _FusedMatMul (oneDNN's convolution: 0.5-1.06x).
 */
export function fusesOnCpu(kind: ConvKind, activation: boolean, positions: number): boolean {
  return kind !== "pointwise" || (activation && positions >= FUSED_CONV_MIN_POSITIONS);
}

/**
 * A folded convolution + its shift (+ SiLU) as one oneDNN op: _MklNativeFusedConv2D with fused_ops
 * [BiasAdd] or [BiasAdd, _MklSwish], the kernel TF's CPU build carries for its graph rewrites, run
 * by name. The product, the shift and SiLU take one pass over the output, where the Eigen path
 * takes up to three (and SiLU's pass is an Eigen kernel compiled for AVX only in TF's wheel, while
 * oneDNN picks AVX-512 at run time). A depthwise convolution runs as a grouped one (filter
 * [k, k, 1, C]: one group per channel); padding is PyTorch's, (k-1)/2 on each side, explicit.
 * The op's TArgs attribute is a list of types and fused_ops a list of strings, which only the
 * patched binding sets. `filter` is HWIO (fusedFilter; FoldedConv holds it, so an evaluation pass
 * does not reshape the weight again for every batch).
 */
export function nativeFusedConv(nb: NativeKernelBackend, x: tf.Tensor4D, filter: tf.Tensor4D, shift: tf.Tensor1D, stride: number, activation: boolean): tf.Tensor4D {
  const B = nb.binding;
  const k = filter.shape[0];
  const attrs = [
    ...convAttrs(nb, stride, symmetricPad(k)),
    { name: "num_args", type: B.TF_ATTR_INT, value: 1 },
    // Lists: only the patched binding accepts arrays here (the types say string and type).
    { name: "fused_ops", type: B.TF_ATTR_STRING, value: (activation ? ["BiasAdd", "_MklSwish"] : ["BiasAdd"]) as unknown as string },
    { name: "TArgs", type: B.TF_ATTR_TYPE, value: [B.TF_FLOAT] as unknown as number },
    { name: "epsilon", type: B.TF_ATTR_FLOAT, value: 1e-4 },
    // The label that selects oneDNN's kernel registered under the op's name.
    { name: "_kernel", type: B.TF_ATTR_STRING, value: "MklNameChangeOp" },
  ];
  return runNativeOp(nb, "_MklNativeFusedConv2D", attrs, [x, filter, shift]) as tf.Tensor4D;
}
