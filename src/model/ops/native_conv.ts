// Strided depthwise convolution with PyTorch's symmetric padding on the native backend, as one
// differentiable op: TF's depthwise kernels (forward and both gradients) take the padding as an
// attribute ("EXPLICIT"), which tfjs-node's kernels do not expose. Otherwise the input is first
// copied into a padded tensor (PadV2, and a Slice for its gradient) and that copy is what the
// convolution keeps for its backward pass. Same forward values (bit-identical, measured); the
// gradients differ from the padded formulation's by float round-off (summation order). Where this
// project's AVX2/FMA kernels are loaded (engine/custom_ops.ts), those run instead (item 19).
//
// May touch: @tensorflow/tfjs and the native backend (native_backend.ts). Called by ops/layers.ts;
// native_eval.ts shares its convolution attributes.
import * as tf from "@tensorflow/tfjs";
import { customOpsActive } from "../../engine/custom_ops";
import { floatType, NativeAttr, NativeKernelBackend, runNativeOp } from "./native_backend";

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

/** The same on this project's AVX2/FMA kernels (engine/custom_ops.ts): one op forward, one for both gradients. */
function customDepthwiseConv(nb: NativeKernelBackend, x: tf.Tensor4D, weight: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  const B = nb.binding;
  const attrs = [{ name: "stride", type: B.TF_ATTR_INT, value: stride }, { name: "pad", type: B.TF_ATTR_INT, value: pad }];
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
