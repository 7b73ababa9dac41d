// Item 29's A/B (docs/performance.md): B1 training steps on the native CPU engine with
// squeeze-excitation's small products as TensorFlow's MatMul (what squeeze_excitation.ts runs) against
// TF.js's BatchMatMulV2 (the same products renamed back on their way into the binding), alternating
// step by step in one process (interleaved_ab.ts).
//   node --import tsx bench/se_products.ts [--size 32] [--batch 64] [--pairs 40]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both to AVX2.
import { runAb } from "./interleaved_ab";

// MatMul's transpose_a/b are BatchMatMulV2's adj_x/y; both take 2-D inputs.
const rename: Record<string, string> = { transpose_a: "adj_x", transpose_b: "adj_y" };

runAb({
  candidate: "MatMul",
  baseline: "BatchMatMulV2",
  rewritten: "products renamed back to BatchMatMulV2",
  rewrite: (real, name, attrs, inputIds, outputs) =>
    name !== "MatMul" ? undefined : real.executeOp("BatchMatMulV2", attrs.map((a) => (a.name in rename ? { ...a, name: rename[a.name] } : a)), inputIds, outputs),
});
