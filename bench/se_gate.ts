// Item 38's A/B (docs/performance.md): B1 training steps on the native CPU engine with
// squeeze-excitation's gate from the spatial mean as one op of this project's kernels each way
// (BiasInitSqueezeGate and BiasInitSqueezeGateGrad, tools/native/ops/squeeze_gate.cc), against
// TensorFlow's ops (MatMul, Sigmoid, Mul, Sub, Sum, RealDiv: ~27 per block), alternating step by
// step in one process (interleaved_ab.ts; values move at float round-off between the two).
//   node --import tsx bench/se_gate.ts [--size 240 --batch 16] [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both variants to AVX2.
import { runAb } from "./interleaved_ab";
import { setSqueezeGateKernel } from "../src/model/ops/native_eval";

runAb({
  candidate: "gate op",
  baseline: "TensorFlow's ops",
  rewritten: "ops rewritten (none: switched by setSqueezeGateKernel)",
  select: (baseline) => setSqueezeGateKernel(!baseline),
});
