// Item 32's A/B (docs/performance.md): B1 training steps on the native CPU engine with the backward
// pass of expand's BatchNorm + SiLU and the stride-1 depthwise convolution as one op
// (BiasInitBatchNormActDepthwiseGrad, what native_conv.ts runs) against the three ops it replaced
// (BiasInitBatchNormActApply recomputing y, BiasInitDepthwiseConvGrad writing dy,
// BiasInitBatchNormActGrad reading it; put back on their way into the binding: the same bits),
// alternating step by step in one process (interleaved_ab.ts).
//   node --import tsx bench/bn_dw_fusion.ts [--size 32] [--batch 64] [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both to AVX2.
import { runAb } from "./interleaved_ab";

runAb({
  candidate: "fused",
  baseline: "apply + conv grad + BN grad",
  rewritten: "fused gradients split back into Apply + DepthwiseConvGrad + BatchNormActGrad",
  rewrite: (real, name, attrs, inputIds, outputs) => {
    if (name !== "BiasInitBatchNormActDepthwiseGrad") return undefined;
    const [dd, e, gamma, beta, mean, invstd, w] = inputIds;
    const activation = attrs.filter((a) => a.name === "activation");
    const conv = attrs.filter((a) => a.name !== "activation");
    const [y] = real.executeOp("BiasInitBatchNormActApply", activation, [e, gamma, beta, mean, invstd], 1);
    const [dy, dw] = real.executeOp("BiasInitDepthwiseConvGrad", conv, [dd, y.id, w], 2);
    real.deleteTensor(y.id);
    try {
      return [...real.executeOp("BiasInitBatchNormActGrad", activation, [dy.id, e, gamma, beta, mean, invstd], outputs - 1), dw];
    } finally {
      real.deleteTensor(dy.id);
    }
  },
});
