// Evaluation's depthwise stage of an MBConv block on this project's kernels (engine/custom_ops.ts;
// tools/native/ops/depthwise_eval.cc), which layers.ts depthwiseStageForEval runs in place of
// the layers one by one on the native CPU engine:
// - nativeExpandDepthwiseSilu (item 42): one op for the expansion (1x1 convolution, BatchNorm folded
//   in, SiLU), the depthwise convolution with its shift and SiLU, and squeeze-excitation's squeeze
//   (the mean of the output over H and W), where the expansion's weights are not too large
//   (fusesExpansion): the expansion's output stays in the cache, row by row or a few small images
//   at a time, instead of being written by one op and read back by the next;
// - else nativeExpansionBias (oneDNN's 1x1 convolution with its shift, no SiLU), then
//   nativeDepthwiseSilu: one op for the rest, the expansion's SiLU included (item 27).
// On the Intel guest both gave the same bits wherever the expansion ran on oneDNN's convolution,
// and differed at float round-off where it ran as _FusedMatMul (fewer than 16 positions;
// NUMERICS_VERSION 13): bench/expand_fusion.ts prints the largest difference, and
// test/eval_fusion.test.ts checks both against TF.js's ops.
//
// May touch: @tensorflow/tfjs and the native backend (native_backend.ts). Called by ops/layers.ts.
import * as tf from "@tensorflow/tfjs";
import type { NativeKernelBackend } from "./native_backend";
import { customDepthwiseAttrs } from "./native_conv";
import { type FoldedConv, FUSED_CONV_MIN_POSITIONS, nativeFusedConv, nativePointwiseBias, oneDnnKernels } from "./native_eval";
import { symmetricPad } from "./padding";

/**
 * Evaluation's depthwise stage on this project's kernels (engine/custom_ops.ts), one op
 * (tools/native/ops/depthwise_eval.cc): y = silu(depthwise(act(x), folded weight [k, k, C, 1]) +
 * shift), act SiLU where inputSilu (x is then the expansion's output before its SiLU, which this op
 * applies row by row as it reads), and squeeze-excitation's squeeze, the mean of y over H and W
 * [N, C], summed as y is written. Against oneDNN's fused convolutions (expansion and depthwise, each
 * with its SiLU post-op) and TF's Mean, B1's 23 depthwise stages at 240x240 batch 16, timed alone,
 * took ~26 ms less with both engines held to AVX2 and ~22 ms less with AVX-512; in a whole
 * evaluation batch 7-13% less held to AVX2, 0-13% with AVX-512 (bench/eval_fusion.ts; docs/performance.md, item 27).
 */
export function nativeDepthwiseSilu(nb: NativeKernelBackend, x: tf.Tensor4D, weight: tf.Tensor4D, shift: tf.Tensor1D, stride: number, inputSilu: boolean): { y: tf.Tensor4D; pooled: tf.Tensor2D } {
  const attrs = [...customDepthwiseAttrs(nb, stride, symmetricPad(weight.shape[0])), { name: "input_silu", type: nb.binding.TF_ATTR_BOOL, value: inputSilu }];
  const [y, pooled] = nb.executeMultipleOutputs("BiasInitDepthwiseSilu", attrs, [x, weight, shift], 2);
  return { y: y as tf.Tensor4D, pooled: pooled as tf.Tensor2D };
}

/**
 * The expansion of an MBConv block in evaluation with its SiLU left to nativeDepthwiseSilu:
 * conv(x, folded weight) + shift, as oneDNN's fused convolution from FUSED_CONV_MIN_POSITIONS
 * positions (B1's 21 expansions at 240x240 batch 16 held to AVX2: 65 ms against 75 as _FusedMatMul;
 * 52 against 50 with AVX-512), else as _FusedMatMul.
 */
export function nativeExpansionBias(nb: NativeKernelBackend, x: tf.Tensor4D, folded: FoldedConv): tf.Tensor4D {
  const positions = x.shape[1] * x.shape[2];
  if (oneDnnKernels(nb) && positions >= FUSED_CONV_MIN_POSITIONS) return nativeFusedConv(nb, x, folded.filter, folded.shift, 1, false);
  return nativePointwiseBias(nb, x, folded.weight as tf.Tensor2D, folded.shift);
}

/**
 * The largest expansion weight (C_in x C_exp values) that nativeExpandDepthwiseSilu takes: the op
 * multiplies the whole weight by each input row, or by a group of small images at a time, and the
 * weight must stay in the core's cache meanwhile. Measured up to B1's largest, 320 x 1920; larger
 * weights (wider EfficientNets) keep the expansion as its own op until measured. B1's expansions
 * one by one, the op against nativeExpansionBias + nativeDepthwiseSilu (bench/expand_fusion.ts;
 * Intel Xeon guest, 2026-12-06, held to AVX2 and with AVX-512, 240x240 batch 16 and 32x32 batch
 * 256): 1.00-1.68x, one shape of 48 at 0.92x (1.16-1.24x in the other runs).
 */
export const EXPAND_FUSION_MAX_WEIGHTS = 614_400;

let expandFusion = true;

/** false: every expansion as nativeExpansionBias, as before item 42 (bench/expand_fusion.ts, tests). Default true. */
export function setExpandFusion(on: boolean): void {
  expandFusion = on;
}

/** Whether an expansion of weight [inChannels, outChannels] runs inside the depthwise op (nativeExpandDepthwiseSilu). */
export function fusesExpansion(inChannels: number, outChannels: number): boolean {
  return expandFusion && inChannels * outChannels <= EXPAND_FUSION_MAX_WEIGHTS;
}

/**
 * The expansion and the depthwise stage as one op (BiasInitExpandDepthwiseSilu): y =
 * silu(depthwise(silu(x @ expansion.weight + expansion.shift), weight) + shift) and its mean over H
 * and W, from the block's input x [N, H, W, C_in]; the expansion's 1x1 products summed in channel
 * order from zero, per output channel, as oneDNN's convolution does them here.
 */
export function nativeExpandDepthwiseSilu(nb: NativeKernelBackend, x: tf.Tensor4D, expansion: FoldedConv, weight: tf.Tensor4D, shift: tf.Tensor1D, stride: number): { y: tf.Tensor4D; pooled: tf.Tensor2D } {
  const attrs = customDepthwiseAttrs(nb, stride, symmetricPad(weight.shape[0]));
  const [y, pooled] = nb.executeMultipleOutputs("BiasInitExpandDepthwiseSilu", attrs, [x, expansion.weight, expansion.shift, weight, shift], 2);
  return { y: y as tf.Tensor4D, pooled: pooled as tf.Tensor2D };
}
