// Item 34 per call (docs/performance.md): for each of B1's squeeze-excitation blocks at 240x240
// batch 16 (or --batch/--size), the projection of SE's output and its gradients as training ran
// them unfolded (BiasInitChannelAffine writing y * gate, the product, then in the backward pass the
// input-gradient product, y * gate written again for the weight-gradient product, and
// BiasInitChannelDot for the gate's gradient) against the fold (se_projection_fold.ts: two
// batched products with per-sample weights and one for the weight and gate gradients), alternating
// call by call; prints the medians, the speed-up, the largest differences, and whether the rule
// (foldsGateInTraining) folds the shape.
//   node --import tsx bench/se_fold_calls.ts [--size 240] [--batch 16] [--calls 12]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both to AVX2.
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { customOpsActive } from "../src/engine/custom_ops";
import { nativeCpuOps, runNativeOp } from "../src/model/ops/native_backend";
import { pointwiseGradients, pointwiseProducts } from "../src/model/ops/layers";
import { foldedProjection, foldedProjectionGradients, foldsGateInTraining } from "../src/model/ops/se_projection_fold";
import { efficientNetArchitecture } from "../src/model/architecture";
import { convOutputSize } from "../src/model/ops/padding";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "240" }, batch: { type: "string", default: "16" }, calls: { type: "string", default: "12" } } });
  const [size, n, calls] = [Number(values.size), Number(values.batch), Number(values.calls)];
  const info = await initBackend();
  const nb = nativeCpuOps();
  if (nb === null || !customOpsActive()) throw new Error(`needs the native engine with this project's kernels; this is ${backendLine(info)}`);
  console.log(`${backendLine(info)} | B1 at ${size}x${size} batch ${n}, ${calls} calls of each per block, alternating`);
  // Each block's depthwise output [h, h, C] and projection C -> out, from the architecture.
  const arch = efficientNetArchitecture("b1");
  let h = convOutputSize(size, arch.stem.kernel, arch.stem.stride);
  const blocks: Array<[number, number, number]> = [];
  for (const b of arch.stages.flat()) {
    h = convOutputSize(h, b.kernel, b.stride);
    blocks.push([h, b.depthwise.inChannels, b.outChannels]);
  }
  const median = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
  let [sumPlain, sumFolded, sumRule] = [0, 0, 0];
  for (const [hw, c, o] of blocks) {
    const [y, gate, w, dp] = [tf.randomNormal([n, hw, hw, c]) as tf.Tensor4D, tf.randomUniform([n, c]), tf.randomNormal([c, o]) as tf.Tensor2D, tf.randomNormal([n, hw, hw, o])];
    const zero = tf.zerosLike(gate);
    const plain = () => tf.tidy(() => {
      const scaled = (): tf.Tensor2D => tf.reshape(runNativeOp(nb, "BiasInitChannelAffine", [], [y, gate, zero]), [n * hw * hw, c]) as tf.Tensor2D;
      const p = pointwiseProducts(scaled(), w, [n, hw, hw, o]);
      const [dse, dw] = pointwiseGradients(dp, scaled(), w, y.shape);
      const dgate = runNativeOp(nb, "BiasInitChannelDot", [], [dse, y]);
      return [p, tf.mul(dse, tf.reshape(gate, [n, 1, 1, c])), dw, dgate];
    });
    const folded = () => tf.tidy(() => {
      const g = foldedProjectionGradients(nb, dp, y, gate, w);
      return [foldedProjection(nb, y, gate, w), g.dy, g.dw, g.dgate];
    });
    const [a, b] = [plain(), folded()];
    const diffs = a.map((t, i) => tf.tidy(() => tf.max(tf.abs(tf.sub(t, b[i]))).dataSync()[0] / tf.max(tf.abs(t)).dataSync()[0]));
    tf.dispose([...a, ...b]);
    const times: [number[], number[]] = [[], []];
    for (let i = 0; i < calls; i++) {
      [plain, folded].forEach((f, j) => {
        const t0 = performance.now();
        tf.dispose(f());
        times[j].push(performance.now() - t0);
      });
    }
    const [tp, tf_] = times.map(median);
    const rule = foldsGateInTraining(nb, hw * hw);
    [sumPlain, sumFolded, sumRule] = [sumPlain + tp, sumFolded + tf_, sumRule + (rule ? tf_ : tp)];
    console.log(`${hw}x${hw}x${c} -> ${o}: unfolded ${tp.toFixed(2)} ms, folded ${tf_.toFixed(2)} ms (${(tp / tf_).toFixed(2)}x)${rule ? ", folded by the rule" : ""} | largest difference / largest value: ${diffs.map((d) => d.toExponential(1)).join(", ")} (output, SE input gradient, weight, gate gradients)`);
    tf.dispose([y, gate, w, dp, zero]);
  }
  console.log(`summed over B1's ${blocks.length} blocks: unfolded ${sumPlain.toFixed(1)} ms, folded ${sumFolded.toFixed(1)} ms, by the rule ${sumRule.toFixed(1)} ms`);
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
