// Item 40's A/B (docs/performance.md), and any change to this project's kernels (tools/native/ops/):
// B1 training steps (or, with --eval, evaluation batches) on the native CPU engine with the kernels
// as built now (the candidate) against the same kernels at another git revision (the baseline),
// alternating step by step in one process (interleaved_ab.ts). The baseline is
// tools/native/build_baseline_ops.sh's addon: every op renamed BaseBiasInit*, loaded beside the
// current ones, and run by renaming each BiasInit* op on its way into the binding.
//   bash tools/native/build_baseline_ops.sh REV
//   node --import tsx bench/kernels_ab.ts [--size 240] [--batch 16] [--pairs 20] [--eval]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both to AVX2 (the baseline's
// AVX2 build is then the one loaded).
import * as fs from "fs";
import * as path from "path";
import { nativeDir } from "../src/engine/backend";
import { customOpsState } from "../src/engine/custom_ops";
import { runAb, type Attr, type Binding } from "./interleaved_ab";

const PREFIX = "BiasInit";

runAb({
  candidate: "kernels as built",
  baseline: "baseline kernels",
  rewritten: "kernel calls renamed to the baseline's",
  prepare: () => {
    const { active, isa, reason } = customOpsState();
    if (!active || isa === null) throw new Error(`this project's kernels are not active (${reason})`);
    const file = path.join(nativeDir(), "tfjs-node", "bias-ops", isa === "avx512" ? "baseline_ops_avx512.node" : "baseline_ops.node");
    if (!fs.existsSync(file)) throw new Error(`${file} does not exist: run 'bash tools/native/build_baseline_ops.sh REV' first`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(file) as { ops?: string[]; isa?: string };
    if (addon.isa !== isa) throw new Error(`${file} is built for ${addon.isa}, the kernels running are ${isa}`);
    console.log(`baseline: ${file} (${(addon.ops ?? []).length} ops)`);
  },
  rewrite: (real: Binding, name: string, attrs: Attr[], inputIds: number[], outputs: number) =>
    name.startsWith(PREFIX) ? real.executeOp(`Base${name}`, attrs, inputIds, outputs) : undefined,
});
