// The native (tfjs-node) backend as the custom ops of this folder use it: its backend object runs
// any TensorFlow op by name (executeMultipleOutputs), including ops and attributes TF.js's own
// kernels do not expose (training-mode FusedBatchNormV3, SoftplusGrad, explicit convolution padding).
//
// May touch: @tensorflow/tfjs and the active backend object (duck-typed: src/ does not depend on tfjs-node).
import * as tf from "@tensorflow/tfjs";
import { customOpsActive } from "../../engine/custom_ops";

export interface NativeAttr {
  name: string;
  type: number;
  value: number | boolean | string | number[];
}

/** The parts of tfjs-node's NodeJSKernelBackend used here (duck-typed: src/ does not depend on tfjs-node). */
export interface NativeKernelBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_FLOAT: number; TF_ATTR_BOOL: number; TF_ATTR_STRING: number; TF_ATTR_INT: number; TF_FLOAT: number; TF_INT32: number };
  executeMultipleOutputs(name: string, attrs: NativeAttr[], inputs: tf.Tensor[], numOutputs: number): tf.Tensor[];
}

/** tfjs-node's backend when it is the active one (CPU or GPU build), else null. */
export function nativeOps(): NativeKernelBackend | null {
  if (tf.getBackend() !== "tensorflow") return null;
  const b = tf.backend() as unknown as Partial<NativeKernelBackend>;
  return typeof b.executeMultipleOutputs === "function" && b.binding !== undefined ? (b as NativeKernelBackend) : null;
}

/** True when the native engine runs on a GPU (tfjs-node-gpu with a visible device). */
export function nativeOnGpu(nb: NativeKernelBackend): boolean {
  return (nb as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
}

/** tfjs-node's backend when it is the active one and runs on the CPU (where evaluation's native_eval.ts ops apply), else null. */
export function nativeCpuOps(): NativeKernelBackend | null {
  const nb = nativeOps();
  return nb !== null && !nativeOnGpu(nb) ? nb : null;
}

/** The native CPU engine where this project's kernels (engine/custom_ops.ts) are loaded and active, else null. */
export function kernelCpuOps(): NativeKernelBackend | null {
  return customOpsActive() ? nativeCpuOps() : null;
}

/** Runs one TensorFlow op with one output. */
export function runNativeOp(nb: NativeKernelBackend, name: string, attrs: NativeAttr[], inputs: tf.Tensor[]): tf.Tensor {
  return nb.executeMultipleOutputs(name, attrs, inputs, 1)[0];
}

/** The "T": float32 attribute most ops take. */
export function floatType(nb: NativeKernelBackend): NativeAttr {
  return { name: "T", type: nb.binding.TF_ATTR_TYPE, value: nb.binding.TF_FLOAT };
}

/**
 * a @ b, each transposed where asked, as TensorFlow's 2-D MatMul run by name. TF.js's tf.matMul runs
 * BatchMatMulV2, which where TensorFlow's oneDNN is on (its default on CPUs with AVX-512 VNNI/BF16 or
 * AMX) spends 200-480 us per call on squeeze-excitation's [N, C] x [C, S] products inside a
 * training step (B1 240x240 batch 16, 138 calls, 25-30 ms a step), against 20-170 us as MatMul
 * (docs/performance.md, item 29). Where oneDNN is off the two run the same kernel: the same bits.
 */
export function nativeMatMul(nb: NativeKernelBackend, a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor2D {
  const B = nb.binding;
  return runNativeOp(nb, "MatMul", [floatType(nb), { name: "transpose_a", type: B.TF_ATTR_BOOL, value: transposeA }, { name: "transpose_b", type: B.TF_ATTR_BOOL, value: transposeB }], [a, b]) as tf.Tensor2D;
}

/**
 * x [B, M, K] @ w [B, K, N], each transposed in its last two axes where asked: oneDNN's batched
 * product run by name (`oneDnn`: the kernel TF's rewrite would pick, _MklBatchMatMulV2 with the label
 * MklNameChangeOp; native_eval.ts oneDnnKernels says whether it runs), else TF's BatchMatMulV2.
 */
export function nativeBatchMatMul(nb: NativeKernelBackend, x: tf.Tensor, w: tf.Tensor, oneDnn: boolean, adjX = false, adjY = false): tf.Tensor {
  const B = nb.binding;
  const attrs = [floatType(nb), { name: "adj_x", type: B.TF_ATTR_BOOL, value: adjX }, { name: "adj_y", type: B.TF_ATTR_BOOL, value: adjY }];
  if (!oneDnn) return runNativeOp(nb, "BatchMatMulV2", attrs, [x, w]);
  return runNativeOp(nb, "_MklBatchMatMulV2", [...attrs, { name: "_kernel", type: B.TF_ATTR_STRING, value: "MklNameChangeOp" }], [x, w]);
}
