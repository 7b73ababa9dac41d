// Item 30's A/B (docs/performance.md): B1 training steps on the native CPU engine with the depthwise
// convolution's BatchNorm gradient reading squeeze-excitation's input gradient as an affine
// (BiasInitBatchNormActGradScaled, what squeeze_excitation.ts runs) against the two ops it replaced
// (BiasInitChannelAffine writing that gradient, then BiasInitBatchNormActGrad reading it, put back
// on their way into the binding: the same bits), alternating step by step in one process
// (interleaved_ab.ts).
//   node --import tsx bench/bn_se_fusion.ts [--size 32] [--batch 64] [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both to AVX2.
import { runAb } from "./interleaved_ab";

runAb({
  candidate: "fused",
  baseline: "affine + grad",
  rewritten: "BatchNorm gradients split back into ChannelAffine + BatchNormActGrad",
  rewrite: (real, name, attrs, inputIds, outputs) => {
    if (name !== "BiasInitBatchNormActGradScaled") return undefined;
    const [dy, x, gamma, beta, mean, invstd, scale, shift] = inputIds;
    const [affine] = real.executeOp("BiasInitChannelAffine", [], [dy, scale, shift], 1);
    try {
      return real.executeOp("BiasInitBatchNormActGrad", attrs, [affine.id, x, gamma, beta, mean, invstd], outputs);
    } finally {
      real.deleteTensor(affine.id);
    }
  },
});
