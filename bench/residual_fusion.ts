// Item 35's A/B (docs/performance.md): B1 training steps on the native CPU engine with each
// residual block's projection BatchNorm, stochastic depth's row factor and the residual sum as one
// op (BiasInitBatchNormResidual, its backward the gradient kernel with the factor as scale), against
// the three ops (BiasInitBatchNormAct, Mul, AddV2; backward Mul and BiasInitBatchNormActGrad),
// alternating step by step in one process (interleaved_ab.ts; the same bits either way).
//   node --import tsx bench/residual_fusion.ts [--size 240 --batch 16] [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both variants to AVX2.
import { runAb } from "./interleaved_ab";
import { setResidualFusion } from "../src/model/ops/layers";

runAb({
  candidate: "fused",
  baseline: "three ops",
  rewritten: "ops rewritten (none: switched by setResidualFusion)",
  select: (baseline) => setResidualFusion(!baseline),
});
