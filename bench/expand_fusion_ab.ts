// Item 42's A/B (docs/performance.md), whole evaluation batches: B1 on the native CPU engine with
// every expansion up to EXPAND_FUSION_MAX_WEIGHTS (all of B1's) inside the depthwise op
// (BiasInitExpandDepthwiseSilu, src/model/ops/native_eval_stage.ts) against the expansion as its own
// oneDNN op before BiasInitDepthwiseSilu, alternating batch by batch in one process
// (interleaved_ab.ts). bench/expand_fusion.ts compares the two per B1 shape.
//   node --import tsx bench/expand_fusion_ab.ts --eval --size 240 --batch 16 [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both variants to AVX2.
import { runAb } from "./interleaved_ab";
import { setExpandFusion } from "../src/model/ops/native_eval_stage";

runAb({
  candidate: "expansion inside",
  baseline: "expansion its own op",
  rewritten: "ops rewritten (none: switched by setExpandFusion)",
  select: (baseline) => setExpandFusion(!baseline),
});
