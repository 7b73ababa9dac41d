// Item 27's A/B (docs/performance.md): B1's evaluation batch with each MBConv block's depthwise
// stage as one op of this project's kernels (layers.ts depthwiseStageForEval) against each layer its
// own op (setLayerFusion "off": oneDNN's convolutions with their SiLU post-op, TF's Mean). Both
// alternate in one process, so the machine's drift between processes does not enter; prints the
// median time per batch of each and the largest logit difference between them. A benchmark, not a
// test; needs the native engine with this project's kernels (`make native`).
//   node --import tsx bench/eval_fusion.ts [--size 240] [--batch 16] [--rounds 8]
// Held to AVX2: ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2 node --import tsx bench/eval_fusion.ts
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { backendLine, initBackend } from "../src/engine/backend";
import { customOpsActive, customOpsState } from "../src/engine/custom_ops";
import { BinaryClassifier } from "../src/model/head";
import { EvalFolds } from "../src/model/ops/native_eval";
import { setLayerFusion } from "../src/model/ops/layers";
import { makeRng } from "../src/rng";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "240" }, batch: { type: "string", default: "16" }, rounds: { type: "string", default: "8" } } });
  const size = Number(values.size), batch = Number(values.batch), rounds = Number(values.rounds);
  const info = await initBackend("native");
  console.log(backendLine(info));
  if (!customOpsActive()) throw new Error(`bench/eval_fusion.ts: this project's kernels are not active (${customOpsState().reason}); nothing to compare`);
  const net = new BinaryClassifier("b1", makeRng(0, "bench"));
  const x = tf.randomNormal([batch, size, size, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  const folds = new EvalFolds();
  const times: Record<"fused" | "layer by layer", number[]> = { fused: [], "layer by layer": [] };
  const logits: Partial<Record<"fused" | "layer by layer", Float32Array>> = {};
  // Round 0 warms both paths (oneDNN builds its primitives on first use) and is not counted.
  for (let round = 0; round <= rounds; round++) {
    for (const mode of ["fused", "layer by layer"] as const) {
      setLayerFusion(mode === "fused" ? "auto" : "off");
      const t0 = performance.now();
      const out = tf.tidy(() => net.forward(x, { training: false, folds }));
      logits[mode] = out.dataSync() as Float32Array;
      if (round > 0) times[mode].push(performance.now() - t0);
      out.dispose();
    }
  }
  setLayerFusion("auto");
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
  const a = logits.fused as Float32Array, b = logits["layer by layer"] as Float32Array;
  const diff = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
  const [f, l] = [median(times.fused), median(times["layer by layer"])];
  console.log(`B1 evaluation, ${size}x${size} batch ${batch}, medians of ${rounds} alternating batches: ` +
    `fused ${f.toFixed(0)} ms, layer by layer ${l.toFixed(0)} ms (${((1 - f / l) * 100).toFixed(1)}% less); max logit difference ${diff.toExponential(2)}`);
  folds.dispose();
  tf.dispose(x);
  net.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
