// Item 42 per B1 shape (docs/performance.md): an MBConv block's expansion + depthwise stage in
// evaluation as one op of this project's kernels (BiasInitExpandDepthwiseSilu) against the expansion
// as its own oneDNN op (nativeExpansionBias) + BiasInitDepthwiseSilu, alternating call by call in one
// process on random inputs; the median of each, their ratio, and the largest difference between
// their outputs. The shapes are B1's at 240x240 batch 16 (x the blocks that have them); `--batch
// 256 --size 32` gives those at 32x32 batch 256. Where this rule draws its line:
// native_eval_stage.ts EXPAND_FUSION_MAX_WEIGHTS. bench/expand_fusion_ab.ts times whole batches.
//   node --import tsx bench/expand_fusion.ts [--size 240 --batch 16] [--reps 10]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds both to AVX2.
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { customOpsActive, customOpsState } from "../src/engine/custom_ops";
import { nativeCpuOps } from "../src/model/ops/native_backend";
import { fusedFilter } from "../src/model/ops/native_eval";
import { EXPAND_FUSION_MAX_WEIGHTS, nativeDepthwiseSilu, nativeExpandDepthwiseSilu, nativeExpansionBias } from "../src/model/ops/native_eval_stage";

/** [input side, C_in, C_exp, kernel, stride, blocks] of B1's expanding blocks at 240x240 and at 32x32. */
const SHAPES: Record<string, number[][]> = {
  240: [[120, 16, 96, 3, 2, 1], [60, 24, 144, 3, 1, 2], [60, 24, 144, 5, 2, 1], [30, 40, 240, 5, 1, 2], [30, 40, 240, 3, 2, 1], [15, 80, 480, 3, 1, 3],
    [15, 80, 480, 5, 1, 1], [15, 112, 672, 5, 1, 3], [15, 112, 672, 5, 2, 1], [8, 192, 1152, 5, 1, 4], [8, 192, 1152, 3, 1, 1], [8, 320, 1920, 3, 1, 1]],
  32: [[16, 16, 96, 3, 2, 1], [8, 24, 144, 3, 1, 2], [8, 24, 144, 5, 2, 1], [4, 40, 240, 5, 1, 2], [4, 40, 240, 3, 2, 1], [2, 80, 480, 3, 1, 3],
    [2, 80, 480, 5, 1, 1], [2, 112, 672, 5, 1, 3], [2, 112, 672, 5, 2, 1], [1, 192, 1152, 5, 1, 4], [1, 192, 1152, 3, 1, 1], [1, 320, 1920, 3, 1, 1]],
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "240" }, batch: { type: "string", default: "16" }, reps: { type: "string", default: "10" } } });
  const [size, n, reps] = [values.size, Number(values.batch), Number(values.reps)];
  const shapes = SHAPES[size];
  if (shapes === undefined) throw new Error(`--size must be 240 or 32, got ${size}`);
  const info = await initBackend();
  const nb = nativeCpuOps();
  if (nb === null || !customOpsActive()) throw new Error(`needs the native CPU engine with this project's kernels (${customOpsState().reason}); this is ${backendLine(info)}`);
  console.log(`${backendLine(info)} | B1's expansions at ${size}x${size} batch ${n}, median of ${reps} alternating calls each`);
  const median = (a: number[]): number => [...a].sort((p, q) => p - q)[a.length >> 1];
  let [twoSum, oneSum] = [0, 0];
  for (const [h, cin, c, k, stride, blocks] of shapes) {
    const x = tf.randomNormal([n, h, h, cin]) as tf.Tensor4D;
    const weight = tf.mul(tf.randomNormal([cin, c]), 1 / Math.sqrt(cin)) as tf.Tensor2D;
    const expansion = { weight, filter: fusedFilter("pointwise", weight), shift: tf.randomNormal([c], 0, 0.1) as tf.Tensor1D };
    const w = tf.mul(tf.randomNormal([k, k, c, 1]), 0.3) as tf.Tensor4D;
    const shift = tf.randomNormal([c], 0, 0.1) as tf.Tensor1D;
    const two = (): tf.Tensor[] => tf.tidy(() => {
      const r = nativeDepthwiseSilu(nb, nativeExpansionBias(nb, x, expansion), w, shift, stride, true);
      return [r.y, r.pooled];
    });
    const one = (): tf.Tensor[] => {
      const r = nativeExpandDepthwiseSilu(nb, x, expansion, w, shift, stride);
      return [r.y, r.pooled];
    };
    const [a, b] = [two(), one()];
    const diff = Math.max(...a.map((t, i) => tf.tidy(() => tf.max(tf.abs(tf.sub(t, b[i]))).dataSync()[0])));
    tf.dispose([...a, ...b]);
    const times: [number[], number[]] = [[], []];
    for (let i = 0; i < reps; i++) {
      for (const j of i % 2 === 0 ? [0, 1] : [1, 0]) {
        const t0 = performance.now();
        tf.dispose(j === 0 ? two() : one());
        times[j].push(performance.now() - t0);
      }
    }
    const [tTwo, tOne] = times.map(median);
    twoSum += tTwo * blocks;
    oneSum += tOne * blocks;
    const rule = cin * c <= EXPAND_FUSION_MAX_WEIGHTS ? "inside" : "own op";
    console.log(`${h}x${h} ${cin}->${c} k${k} s${stride} (x${blocks}, rule: ${rule}): two ops ${tTwo.toFixed(2)} ms, one ${tOne.toFixed(2)} ms (${(tTwo / tOne).toFixed(2)}x) | largest difference ${diff.toExponential(1)}`);
    tf.dispose([x, weight, expansion.filter, expansion.shift, w, shift]);
  }
  console.log(`B1's expanding blocks summed: two ops ${twoSum.toFixed(1)} ms, one ${oneSum.toFixed(1)} ms`);
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
