// Strided depthwise convolution with PyTorch's symmetric padding on the native backend, as one
// differentiable op: TF's depthwise kernels (forward and both gradients) take the padding as an
// attribute ("EXPLICIT"), which tfjs-node's kernels do not expose. Otherwise the input is first
// copied into a padded tensor (PadV2, and a Slice for its gradient) and that copy is what the
// convolution keeps for its backward pass. Same forward values (bit-identical, measured); the
// gradients differ from the padded formulation's by float round-off (summation order). Where this
// project's AVX2/FMA kernels are loaded (engine/custom_ops.ts), those run instead (item 19).
//
// On those kernels it also runs training's BatchNorm + SiLU and the depthwise convolution after it
// as one op whose backward pass recomputes the convolution's input (item 21).
//
// May touch: @tensorflow/tfjs, the native backend (native_backend.ts), and the BatchNorm state it
// is given (through native_batchnorm.ts). Called by ops/layers.ts; native_eval.ts shares its
// convolution attributes.
import * as tf from "@tensorflow/tfjs";
import { customOpsActive } from "../../engine/custom_ops";
import type { BatchNormState } from "./layers";
import { floatType, NativeAttr, NativeKernelBackend, runNativeOp } from "./native_backend";
import { customActAttr, customBatchNormActApply, customBatchNormActForward, customBatchNormActGrad } from "./native_batchnorm";

/** The attributes of a TF convolution with `pad` zeros on every side of H and W (also native_eval.ts' fused one). */
export function convAttrs(nb: NativeKernelBackend, stride: number, pad: number): NativeAttr[] {
  const B = nb.binding;
  return [
    floatType(nb),
    { name: "strides", type: B.TF_ATTR_INT, value: [1, stride, stride, 1] },
    { name: "padding", type: B.TF_ATTR_STRING, value: "EXPLICIT" },
    { name: "explicit_paddings", type: B.TF_ATTR_INT, value: [0, 0, pad, pad, pad, pad, 0, 0] },
    { name: "data_format", type: B.TF_ATTR_STRING, value: "NHWC" },
    { name: "dilations", type: B.TF_ATTR_INT, value: [1, 1, 1, 1] },
  ];
}

/** Depthwise k x k convolution (weight [k, k, C, 1]) with `pad` zeros on every side of H and W. */
export function nativeDepthwiseConvPadded(nb: NativeKernelBackend, x: tf.Tensor4D, weight: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  if (customOpsActive()) return customDepthwiseConv(nb, x, weight, stride, pad);
  const attrs = convAttrs(nb, stride, pad);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, w] = args as tf.Tensor[];
    (args[2] as tf.GradSaveFunc)([xIn]);
    return {
      value: runNativeOp(nb, "DepthwiseConv2dNative", attrs, [xIn, w]) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => [
        runNativeOp(nb, "DepthwiseConv2dNativeBackpropInput", attrs, [tf.tensor1d(saved[0].shape, "int32"), w, dy]),
        runNativeOp(nb, "DepthwiseConv2dNativeBackpropFilter", attrs, [saved[0], tf.tensor1d(w.shape, "int32"), dy]),
      ]),
    };
  });
  return op(x, weight) as tf.Tensor4D;
}

/** stride and pad, the attributes of this project's depthwise ops (training's here, evaluation's in native_eval.ts). */
export function customDepthwiseAttrs(nb: NativeKernelBackend, stride: number, pad: number): NativeAttr[] {
  const B = nb.binding;
  return [{ name: "stride", type: B.TF_ATTR_INT, value: stride }, { name: "pad", type: B.TF_ATTR_INT, value: pad }];
}

/** The same on this project's AVX2/FMA kernels (engine/custom_ops.ts): one op forward, one for both gradients. */
function customDepthwiseConv(nb: NativeKernelBackend, x: tf.Tensor4D, weight: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  const attrs = customDepthwiseAttrs(nb, stride, pad);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, w] = args as tf.Tensor[];
    (args[2] as tf.GradSaveFunc)([xIn]);
    return {
      value: runNativeOp(nb, "BiasInitDepthwiseConv", attrs, [xIn, w]) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => nb.executeMultipleOutputs("BiasInitDepthwiseConvGrad", attrs, [dy, saved[0], w], 2)),
    };
  });
  return op(x, weight) as tf.Tensor4D;
}

/**
 * Training's BatchNorm (+ SiLU) of e, then the depthwise convolution of the result, as one
 * differentiable op on this project's kernels (only where they run: engine/custom_ops.ts). The
 * forward pass is one op (BiasInitBatchNormActDepthwise: y = silu(bn(e)) computed row by row as the
 * convolution reads it, never written). The
 * backward pass keeps e and the batch's two per-channel vectors, as the BatchNorm alone would, but
 * not y, which the convolution alone would keep: it recomputes y in one pass
 * (BiasInitBatchNormActApply, bit-identical to the forward's y) and drops it again after the
 * convolution's gradients. At stride 1 the whole backward pass is one op
 * (BiasInitBatchNormActDepthwiseGrad: y recomputed inside it, the convolution's input gradient
 * handed to BatchNorm's gradient as it is computed, never written). Gradients bit-identical to the
 * two ops' (test/layer_fusion.test.ts).
 */
export function nativeBatchNormActDepthwise(nb: NativeKernelBackend, e: tf.Tensor4D, bn: BatchNormState, updateRunningStats: boolean, activation: boolean,
  weight: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  if (!customOpsActive()) throw new Error("src/model/ops/native_conv.ts: nativeBatchNormActDepthwise needs this project's kernels (engine/custom_ops.ts)");
  const attrs = customDepthwiseAttrs(nb, stride, pad);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [eIn, gamma, beta, w] = args as tf.Tensor[];
    const save = args[4] as tf.GradSaveFunc;
    const { y: d, mean, invstd } = customBatchNormActForward(nb, eIn, gamma, beta, bn, updateRunningStats, activation, { w, attrs });
    // gamma, beta and w are variables (or, in a recomputed block, stand-ins alive until its backward pass ends): not saved.
    save([eIn, mean, invstd]);
    return {
      value: d,
      gradFunc: (dd: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [es, ms, is] = saved;
        // At stride 1 one op (item 32); strided layers recompute y, then the two gradients.
        if (stride === 1) return nb.executeMultipleOutputs("BiasInitBatchNormActDepthwiseGrad", [...attrs, customActAttr(nb, activation)], [dd, es, gamma, beta, ms, is, w], 4);
        const ys = customBatchNormActApply(nb, es, gamma, beta, ms, is, activation);
        const [dy, dw] = nb.executeMultipleOutputs("BiasInitDepthwiseConvGrad", attrs, [dd, ys, w], 2);
        ys.dispose();
        const [de, dgamma, dbeta] = customBatchNormActGrad(nb, dy, es, gamma, beta, ms, is, activation);
        dy.dispose();
        return [de, dgamma, dbeta, dw];
      }),
    };
  });
  return op(e, bn.gamma, bn.beta, weight) as tf.Tensor4D;
}
