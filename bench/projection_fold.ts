// Squeeze-excitation's gated projection in evaluation, per B1 projection shape, four ways on the
// native CPU engine: the gate folded into per-sample weights as oneDNN's batched product run by name
// (+ Add; what native_eval.ts foldsInputScale picks where it measured faster), the same fold on
// TensorFlow's BatchMatMulV2 (Eigen's kernel unless TensorFlow's oneDNN rewrite is on), x scaled
// then one _FusedMatMul (what it picks otherwise), and x scaled then oneDNN's fused 1x1
// convolution. Re-check the rule on a new CPU with it; shapes from the architecture, ms per call
// (median of --reps), summed over B1's blocks.
//   node --import tsx bench/projection_fold.ts [--size 240] [--batch 16] [--reps 9]
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../src/engine/backend";
import { nativeOps } from "../src/model/ops/native_backend";
import { foldsInputScale, nativeFusedConv, oneDnnKernels, nativePointwiseBias, nativeScaledPointwiseBias } from "../src/model/ops/native_eval";
import { scaleChannels } from "../src/model/ops/layers";
import { convOutputSize } from "../src/model/ops/padding";
import { efficientNetArchitecture } from "../src/model/architecture";
import { cpuInfo, hasAvx512, tensorflowOneDnnOn } from "../src/util/cpu_info";

function medianMs(f: () => tf.Tensor, reps: number): number {
  tf.tidy(() => { f().dataSync(); });
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    // A block body: a tidy returning the typed array would walk it element by element.
    tf.tidy(() => { f().dataSync(); });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "240" }, batch: { type: "string", default: "16" }, reps: { type: "string", default: "9" } } });
  const [size, n, reps] = [Number(values.size), Number(values.batch), Number(values.reps)];
  await initBackend("native");
  const nb = nativeOps();
  if (nb === null) throw new Error("bench/projection_fold.ts: needs the native engine (make native)");
  // Each projection's input side and channels, in block order; identical shapes are timed once.
  const arch = efficientNetArchitecture("b1");
  let side = convOutputSize(size, arch.stem.kernel, arch.stem.stride);
  const counts = new Map<string, number>();
  for (const b of arch.stages.flat()) {
    side = convOutputSize(side, b.depthwise.kernel, b.depthwise.stride);
    const key = `${side} ${b.project.inChannels} ${b.project.outChannels}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  console.log(`${cpuInfo().model ?? "CPU"} (${hasAvx512() ? "AVX-512" : "no AVX-512"}, TensorFlow's oneDNN ${tensorflowOneDnnOn() ? "on" : "off"}), B1 at ${size}x${size}, batch ${n}, median of ${reps}`);
  const sums = [0, 0, 0, 0];
  const withoutOneDnnByName = <T>(f: () => T): T => {
    const saved = process.env.TF_ENABLE_ONEDNN_OPTS;
    process.env.TF_ENABLE_ONEDNN_OPTS = "0"; // read by oneDnnKernels at each call; TensorFlow read it at start-up
    try {
      return f();
    } finally {
      if (saved === undefined) delete process.env.TF_ENABLE_ONEDNN_OPTS;
      else process.env.TF_ENABLE_ONEDNN_OPTS = saved;
    }
  };
  for (const [key, count] of counts) {
    const [h, cin, cout] = key.split(" ").map(Number);
    const x = tf.randomNormal([n, h, h, cin]) as tf.Tensor4D;
    const gate = tf.randomUniform([n, cin]) as tf.Tensor2D;
    const w = tf.randomNormal([cin, cout]) as tf.Tensor2D;
    const shift = tf.randomNormal([cout]) as tf.Tensor1D;
    const filter = tf.reshape(w, [1, 1, cin, cout]) as tf.Tensor4D;
    const ms = [
      medianMs(() => nativeScaledPointwiseBias(nb, x, gate, w, shift), reps),
      withoutOneDnnByName(() => medianMs(() => nativeScaledPointwiseBias(nb, x, gate, w, shift), reps)),
      medianMs(() => nativePointwiseBias(nb, scaleChannels(x, gate), w, shift), reps),
      medianMs(() => nativeFusedConv(nb, scaleChannels(x, gate), filter, shift, 1, false), reps),
    ];
    ms.forEach((m, i) => (sums[i] += m * count));
    const picked = foldsInputScale(h * h, cout, oneDnnKernels(nb)) ? "folded" : "scaled";
    console.log(`  ${h}x${h} ${cin}->${cout} x${count}: folded ${ms[0].toFixed(2)} | folded, BatchMatMulV2 ${ms[1].toFixed(2)} | scaled + _FusedMatMul ${ms[2].toFixed(2)} | ` +
      `scaled + oneDNN ${ms[3].toFixed(2)} ms (folding ${(ms[2] / ms[0]).toFixed(2)}x; rule here: ${picked})`);
    tf.dispose([x, gate, w, shift, filter]);
  }
  console.log(`summed over B1's projections: folded ${sums[0].toFixed(1)} | folded, BatchMatMulV2 ${sums[1].toFixed(1)} | scaled + _FusedMatMul ${sums[2].toFixed(1)} | ` +
    `scaled + oneDNN ${sums[3].toFixed(1)} ms`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
