// Item 39's A/B (docs/performance.md): B1 training steps on the native CPU engine with each
// parameter group's SGD-momentum step as one op of this project's kernels (BiasInitMomentumStep,
// tools/native/ops/momentum.cc), against TensorFlow's 7 ops per group (ConcatV2, Mul, Add, ConcatV2,
// Mul, Add, SplitV), alternating step by step in one process (interleaved_ab.ts; the same bits).
//   node --import tsx bench/momentum_step.ts [--size 240 --batch 16] [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both variants to AVX2.
import { runAb } from "./interleaved_ab";
import { setMomentumKernel } from "../src/train/optimizer";

runAb({
  candidate: "one op",
  baseline: "TensorFlow's ops",
  rewritten: "ops rewritten (none: switched by setMomentumKernel)",
  select: (baseline) => setMomentumKernel(!baseline),
});
