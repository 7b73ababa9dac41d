// make bench: training and evaluation throughput of EfficientNet + head on the active backend,
// with the peak resident memory, printed beside the PyTorch figures measured on this machine kind
// (../shared/FACTS.md). A benchmark, not a test: numbers vary with machine load.
//   node --import tsx bench/train_speed.ts [--model b1] [--size 32] [--batch 64] [--eval-batch 256] [--seconds 30] [--profile]
// --profile: instead, one training step under tf.profile: kernel count and time per kernel type
// (custom-gradient ops show as "unnamed scope"; how docs/performance.md's tables were made).
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import type { ModelName } from "../src/config";

/** PyTorch 2.13 CPU, torchvision efficientnet_b1 + Linear(1000,1), 32x32, batch 64, 2 cores (FACTS.md). */
const PYTORCH_FACTS = { train: [94, 121], eval: [290, 495] } as const;

function peakRssGb(): number {
  return process.resourceUsage().maxRSS / 1024 / 1024;
}

/** Runs `step` until `seconds` have passed (at least `minSteps` times) after one warm-up call. */
function timeSteps(step: () => void, seconds: number, minSteps: number): { steps: number; seconds: number } {
  step();
  const t0 = performance.now();
  let steps = 0;
  while (steps < minSteps || (performance.now() - t0) / 1000 < seconds) {
    step();
    steps++;
  }
  return { steps, seconds: (performance.now() - t0) / 1000 };
}

async function printProfile(step: () => void): Promise<void> {
  step();
  const t0 = performance.now();
  step();
  console.log(`one step: ${(performance.now() - t0).toFixed(0)} ms`);
  const info = await tf.profile(step);
  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of info.kernels) {
    const e = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    byKernel.set(k.name, e);
  }
  console.log(`kernels per step: ${info.kernels.length} | TF.js-accounted peak ${(info.peakBytes / 1e6).toFixed(0)} MB | peak RSS ${peakRssGb().toFixed(2)} GB`);
  for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) {
    console.log(`${name.padEnd(40)} ${String(e.calls).padStart(6)} calls ${e.ms.toFixed(1).padStart(9)} ms`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: "string", default: "b1" }, size: { type: "string", default: "32" }, batch: { type: "string", default: "64" },
      "eval-batch": { type: "string", default: "256" }, seconds: { type: "string", default: "30" },
      json: { type: "boolean", default: false }, profile: { type: "boolean", default: false } },
  });
  const model = values.model as ModelName;
  const size = Number(values.size);
  const batch = Number(values.batch);
  const evalBatch = Number(values["eval-batch"]);
  const seconds = Number(values.seconds);
  const info = await initBackend();
  if (!values.json) console.log(backendLine(info));
  const net = new BinaryClassifier(model, makeRng(0, "bench"));
  const optimizer = tf.train.momentum(1e-4, 0.9);
  const variables = net.trainableVariables();
  const rng = makeRng(0, "bench-data");
  const x = tf.randomNormal([batch, size, size, 3], 0, 1, "float32", 1) as tf.Tensor4D;
  const y = tf.tensor1d(Array.from({ length: batch }, () => (rng.next() < 0.1 ? 1 : 0)));
  const xe = tf.randomNormal([evalBatch, size, size, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  const trainStep = () => {
    const loss = optimizer.minimize(() => tf.losses.sigmoidCrossEntropy(y, net.forward(x, { training: true, updateBatchNorm: true, rng })) as tf.Scalar, true, variables);
    loss?.dataSync();
    loss?.dispose();
  };
  // The first step creates the optimizer's momentum buffers; count live tensors after it.
  trainStep();
  if (values.profile) {
    await printProfile(trainStep);
    return;
  }
  const tensorsBefore = tf.memory().numTensors;
  const train = timeSteps(trainStep, seconds, 2);
  const trainRate = (train.steps * batch) / train.seconds;
  const trainPeak = peakRssGb();

  const evaluation = timeSteps(() => {
    const out = tf.tidy(() => net.forward(xe, { training: false }));
    out.dataSync();
    out.dispose();
  }, seconds / 2, 1);
  const evalRate = (evaluation.steps * evalBatch) / evaluation.seconds;

  const leaked = tf.memory().numTensors - tensorsBefore;
  if (values.json) {
    // One machine-readable line for bench/compare.ts (which runs each engine in its own process).
    console.log(JSON.stringify({ engine: `tfjs-${info.kind}`, backend: backendLine(info), size, batch, eval_batch: evalBatch,
      params: net.parameterCount(), train_img_s: trainRate, train_steps: train.steps, train_peak_rss_gb: trainPeak,
      eval_img_s: evalRate, peak_rss_gb: peakRssGb(), leaked_tensors: leaked }));
    return;
  }
  const ratio = (rate: number, [lo, hi]: readonly number[]) => `${(rate / hi).toFixed(3)}-${(rate / lo).toFixed(3)}`;
  console.log(`model ${model} + Linear(1000,1) | ${net.parameterCount().toLocaleString("en-US")} params | input ${size}x${size}`);
  console.log(`train: ${trainRate.toFixed(2)} img/s (batch ${batch}, ${train.steps} steps in ${train.seconds.toFixed(1)} s) | peak RSS ${trainPeak.toFixed(2)} GB`);
  console.log(`eval:  ${evalRate.toFixed(2)} img/s (batch ${evalBatch}, ${evaluation.steps} batches in ${evaluation.seconds.toFixed(1)} s) | peak RSS ${peakRssGb().toFixed(2)} GB`);
  if (model === "b1" && size === 32 && batch === 64) {
    console.log(`PyTorch CPU (FACTS.md, same machine kind): train ${PYTORCH_FACTS.train.join("-")} img/s, eval ${PYTORCH_FACTS.eval.join("-")} img/s, peak RSS 0.7 GB`);
    console.log(`ratio project/PyTorch: train ${ratio(trainRate, PYTORCH_FACTS.train)}, eval ${ratio(evalRate, PYTORCH_FACTS.eval)} (make bench-compare measures both side by side)`);
  }
  console.log(`tensors leaked across the benchmark: ${leaked}`);
  tf.dispose([x, y, xe]);
  optimizer.dispose();
  net.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
