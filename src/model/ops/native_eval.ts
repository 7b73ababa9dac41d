// Evaluation on the native CPU engine: convolution + BatchNorm (+ SiLU) with the BatchNorm folded
// into the convolution. With the running statistics, BatchNorm is y = conv(x, w) * alpha + shift
// per output channel (native_batchnorm.ts inferenceScaleShift), which equals conv(x, w * alpha) +
// shift: the scaling moves from the activations (a pass over them) to the weights (a few thousand
// values). A 1x1 convolution then runs as one _FusedMatMul with the shift as its fused BiasAdd
// (libtensorflow's Eigen kernel adds it in the product's output stage: 1.1-2.2x faster than MatMul
// + Add on B1's shapes); the other convolutions add the shift in one pass. The folding moves numbers
// at float round-off (the products' order), like any change of summation order.
//
// _FusedMatMul's fused_ops attribute is a list of strings, which the stock tfjs-node binding cannot
// set; tools/native/patch_binding.py adds that when `make native` compiles it. An engine built
// before that patch is refused when the backend starts (engine/backend.ts asks fusedMatMulProblem),
// with the command that rebuilds it. Not used on a GPU (UNTESTED there:
// whether TF has a GPU _FusedMatMul kernel for BiasAdd was never checked), nor in training, where
// BatchNorm uses the batch's statistics.
//
// The folding itself is ~6 small ops per convolution (69 in B1: ~400 ops, ~10% of a 240x240
// evaluation batch of 16 on the AMD guest). An evaluation pass does not change the variables, so
// train/loop.ts' evaluate hands the forward an EvalFolds, which folds each convolution once per pass
// and frees the folded weights when the pass ends; the same ops on the same values, so the logits
// are bit-identical to folding per batch (test/native_ops.test.ts).
//
// May touch: @tensorflow/tfjs and the native backend (native_backend.ts). Called only by ops/layers.ts;
// train/loop.ts (and bench/train_speed.ts) create and free the EvalFolds of an evaluation pass.
import * as tf from "@tensorflow/tfjs";
import { floatType, NativeKernelBackend } from "./native_backend";
import { inferenceScaleShift } from "./native_batchnorm";
import type { BatchNormState } from "./layers";

export type ConvKind = "full" | "depthwise" | "pointwise";

/** A convolution's weight with its BatchNorm folded in, and the per-channel shift left to add. */
export interface FoldedConv {
  weight: tf.Tensor;
  shift: tf.Tensor1D;
}

/** conv(x, w) -> BatchNorm (running statistics) as conv(x, w * alpha) + shift. */
export function foldBatchNorm(kind: ConvKind, weight: tf.Tensor, bn: BatchNormState): FoldedConv {
  return tf.tidy(() => {
    const { alpha, shift } = inferenceScaleShift(bn);
    return { weight: foldScale(kind, weight, alpha), shift };
  });
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
    if (hit !== undefined) tf.dispose([hit.folded.weight, hit.folded.shift]);
    // Kept: the forward's tidy scopes would free them after the first batch.
    const folded = foldBatchNorm(kind, weight, bn);
    tf.keep(folded.weight);
    tf.keep(folded.shift);
    this.entries.set(weight, { from, folded });
    return folded;
  }

  /** Folded convolutions held (for tests). */
  get size(): number {
    return this.entries.size;
  }

  dispose(): void {
    for (const { folded } of this.entries.values()) tf.dispose([folded.weight, folded.shift]);
    this.entries.clear();
  }
}

/** The convolution's weight with each output channel scaled by alpha ([C_out]). */
export function foldScale(kind: ConvKind, weight: tf.Tensor, alpha: tf.Tensor1D): tf.Tensor {
  // pointwise [in, out] and full HWIO [k, k, in, out]: out is the last axis; depthwise [k, k, C, 1]: C is the third.
  return kind === "depthwise" ? tf.mul(weight, tf.reshape(alpha, [1, 1, -1, 1])) : tf.mul(weight, alpha);
}

/** The first line of why _FusedMatMul does not run on this engine (an engine built before the binding patch), or null when it runs. */
export function fusedMatMulProblem(nb: NativeKernelBackend): string | null {
  try {
    tf.tidy(() => nativePointwiseBias(nb, tf.ones([1, 1, 1, 2]), tf.ones([2, 1]), tf.zeros([1])).dataSync());
    return null;
  } catch (e) {
    return (e instanceof Error ? e.message : String(e)).split("\n")[0];
  }
}

/** 1x1 convolution (weight [in, out]) + per-channel bias as one _FusedMatMul over the [N*H*W, in] view of x. */
export function nativePointwiseBias(nb: NativeKernelBackend, x: tf.Tensor4D, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const B = nb.binding;
  const attrs = [
    floatType(nb),
    { name: "transpose_a", type: B.TF_ATTR_BOOL, value: false },
    { name: "transpose_b", type: B.TF_ATTR_BOOL, value: false },
    { name: "num_args", type: B.TF_ATTR_INT, value: 1 },
    // A string list: only the patched binding accepts an array here (the type says string).
    { name: "fused_ops", type: B.TF_ATTR_STRING, value: ["BiasAdd"] as unknown as string },
    { name: "epsilon", type: B.TF_ATTR_FLOAT, value: 1e-4 },
  ];
  return tf.tidy(() => {
    const out = nb.executeMultipleOutputs("_FusedMatMul", attrs, [tf.reshape(x, [n * h * w, c]), weight, bias], 1)[0];
    return tf.reshape(out, [n, h, w, weight.shape[1]]);
  });
}
