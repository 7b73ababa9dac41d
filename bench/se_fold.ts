// Item 34's A/B (docs/performance.md): B1 training steps on the native CPU engine with
// squeeze-excitation's gate folded into the projection's per-sample weights where the rule folds
// (se_projection_fold.ts: from 30x30 positions), against the same steps unfolded (SE's output
// written and read by the projection, written again for its weight gradient, and the gate's
// gradient summed by BiasInitChannelDot), alternating step by step in one process (interleaved_ab.ts).
//   node --import tsx bench/se_fold.ts --size 240 --batch 16 [--pairs 12]
// At 32x32 the rule folds nothing (16x16 positions at most): both variants are the same steps.
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both variants to AVX2.
import { runAb } from "./interleaved_ab";
import { setFoldInputScale } from "../src/model/ops/native_eval";

runAb({
  candidate: "folded",
  baseline: "unfolded",
  rewritten: "ops rewritten (none: the fold is switched by setFoldInputScale)",
  select: (baseline) => setFoldInputScale(baseline ? "never" : "auto"),
});
