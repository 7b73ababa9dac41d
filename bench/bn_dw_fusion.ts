// Items 32-33's A/B (docs/performance.md): B1 training steps on the native CPU engine with
// expand's BatchNorm + SiLU and the depthwise convolution after it as one op each way, as
// native_conv.ts runs them, against the ops they replaced, put back on their way into the binding
// (the same bits), alternating step by step in one process (interleaved_ab.ts):
// - forward (item 33): BiasInitBatchNormActDepthwise -> BiasInitBatchNormAct writing y, then
//   BiasInitDepthwiseConv reading it;
// - backward (item 32, stride 1): BiasInitBatchNormActDepthwiseGrad -> BiasInitBatchNormActApply
//   recomputing y, BiasInitDepthwiseConvGrad writing dy, BiasInitBatchNormActGrad reading it.
//   BN_DW=forward|backward node --import tsx bench/bn_dw_fusion.ts [--size 32] [--batch 64] [--pairs 40]
// BN_DW picks one of the two (default: both). `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in
// front holds both variants to AVX2.
import { Attr, Binding, OutputMeta, runAb } from "./interleaved_ab";

const which = process.env.BN_DW ?? "both";
if (!["forward", "backward", "both"].includes(which)) throw new Error(`bench/bn_dw_fusion.ts: BN_DW=${which}; use forward, backward or both`);
const named = (attrs: Attr[], names: string[]) => attrs.filter((a) => names.includes(a.name));

function splitForward(real: Binding, attrs: Attr[], inputIds: number[]): OutputMeta[] {
  const [e, gamma, beta, runningMean, runningVar, w] = inputIds;
  const [y, ...stats] = real.executeOp("BiasInitBatchNormAct", named(attrs, ["epsilon", "momentum", "activation"]), [e, gamma, beta, runningMean, runningVar], 5);
  try {
    return [...real.executeOp("BiasInitDepthwiseConv", named(attrs, ["stride", "pad"]), [y.id, w], 1), ...stats];
  } finally {
    real.deleteTensor(y.id);
  }
}

function splitBackward(real: Binding, attrs: Attr[], inputIds: number[]): OutputMeta[] {
  const [dd, e, gamma, beta, mean, invstd, w] = inputIds;
  const activation = named(attrs, ["activation"]);
  const [y] = real.executeOp("BiasInitBatchNormActApply", activation, [e, gamma, beta, mean, invstd], 1);
  const [dy, dw] = real.executeOp("BiasInitDepthwiseConvGrad", named(attrs, ["stride", "pad"]), [dd, y.id, w], 2);
  real.deleteTensor(y.id);
  try {
    return [...real.executeOp("BiasInitBatchNormActGrad", activation, [dy.id, e, gamma, beta, mean, invstd], 3), dw];
  } finally {
    real.deleteTensor(dy.id);
  }
}

runAb({
  candidate: "fused",
  baseline: "split",
  rewritten: `fused ops (${which}) split back into the ops they replaced`,
  rewrite: (real, name, attrs, inputIds) => {
    if (name === "BiasInitBatchNormActDepthwise" && which !== "backward") return splitForward(real, attrs, inputIds);
    if (name === "BiasInitBatchNormActDepthwiseGrad" && which !== "forward") return splitBackward(real, attrs, inputIds);
    return undefined;
  },
});
