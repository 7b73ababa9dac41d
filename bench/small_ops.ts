// Per-call time of this project's kernels and one TensorFlow op on B1's smaller activations, each
// call after --pause-us of JavaScript work (what lies between ops in a training step, and lets TF's
// worker threads go idle). Run it with TF_NUM_INTRAOP_THREADS=1 and =2 to see where handing half of
// an op to a second thread stops paying for that op alone (docs/performance.md, "What was tried": small
// ops on the calling thread alone, where running them inline made the whole step slower).
//   TF_NUM_INTRAOP_THREADS=2 node --import tsx bench/small_ops.ts [--pause-us 300] [--reps 60]
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { customOpsActive, customOpsState } from "../src/engine/custom_ops";
import { nativeCpuOps, runNativeOp } from "../src/model/ops/native_backend";

/** Shapes B1's blocks give these ops at 32x32 batch 64 and at 240x240 batch 16. */
const SHAPES = [[64, 1, 1, 1152], [64, 2, 2, 480], [64, 2, 2, 672], [64, 4, 4, 240], [64, 8, 8, 144], [64, 16, 16, 96], [16, 8, 8, 1152], [16, 15, 15, 672], [16, 30, 30, 240]];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { "pause-us": { type: "string", default: "300" }, reps: { type: "string", default: "60" } } });
  const [pauseUs, reps] = [Number(values["pause-us"]), Number(values.reps)];
  const info = await initBackend();
  const nb = nativeCpuOps();
  if (nb === null || !customOpsActive()) throw new Error(`needs the native CPU engine with this project's kernels (${customOpsState().reason}); this is ${backendLine(info)}`);
  console.log(`${backendLine(info)} | TF_NUM_INTRAOP_THREADS=${process.env.TF_NUM_INTRAOP_THREADS ?? "(default)"} | ${pauseUs} us of JS before each call, mean of ${reps} calls`);
  const busy = (us: number): void => {
    const t = performance.now();
    while ((performance.now() - t) * 1000 < us);
  };
  const time = (f: () => tf.Tensor | tf.Tensor[]): number => {
    for (let i = 0; i < 5; i++) {
      busy(pauseUs);
      tf.dispose(f());
    }
    let total = 0;
    for (let i = 0; i < reps; i++) {
      busy(pauseUs);
      const t0 = performance.now();
      const r = f();
      total += performance.now() - t0;
      tf.dispose(r);
    }
    return (total / reps) * 1000;
  };
  const activation = { name: "activation", type: nb.binding.TF_ATTR_BOOL, value: true };
  for (const shape of SHAPES) {
    const [n, , , c] = shape;
    const x = tf.randomNormal(shape);
    const perSample = [tf.randomNormal([n, c]), tf.zeros([n, c])];
    const perChannel = [tf.ones([c]), tf.zeros([c]), tf.zeros([c]), tf.ones([c])]; // gamma, beta, mean, invstd
    const affine = time(() => runNativeOp(nb, "BiasInitChannelAffine", [], [x, ...perSample]));
    const bnGrad = time(() => nb.executeMultipleOutputs("BiasInitBatchNormActGrad", [activation], [x, x, ...perChannel], 3));
    const add = time(() => tf.add(x, x));
    const count = shape.reduce((a, b) => a * b, 1);
    console.log(`${JSON.stringify(shape).padEnd(16)} ${count.toLocaleString("en-US").padStart(9)} values: BiasInitChannelAffine ${affine.toFixed(0).padStart(5)} us | ` +
      `BiasInitBatchNormActGrad ${bnGrad.toFixed(0).padStart(5)} us | TensorFlow's Add ${add.toFixed(0).padStart(5)} us`);
    tf.dispose([x, ...perSample, ...perChannel]);
  }
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
