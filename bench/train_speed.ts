// make bench: training and evaluation throughput of EfficientNet + head on the active backend,
// with the peak resident memory, printed beside the PyTorch figures measured on this machine kind
// (../shared/FACTS.md). A benchmark, not a test: numbers vary with machine load.
//   node --import tsx bench/train_speed.ts [--model b1] [--size 32] [--batch 64] [--eval-batch 256] [--seconds 30] [--profile [--eval]]
// --profile: instead, one training step profiled: TF.js kernels per type (tf.profile) and, on the
// native engine, libtensorflow ops per type with the step split into time inside ops and the rest.
// --profile --eval: the same for one evaluation batch (--eval-batch images).
import { parseArgs } from "util";
import * as os from "os";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import { measureNativeOps } from "./native_ops";
import { cpuTicks, stealShare, stealText } from "./host_steal";
import { benchEvalStep, benchTrainingStep } from "./training_step";
import type { ModelName } from "../src/config";

/** PyTorch 2.13 CPU, torchvision efficientnet_b1 + Linear(1000,1), 32x32, batch 64, 2 cores (FACTS.md). */
const PYTORCH_FACTS = { train: [94, 121], eval: [290, 495] } as const;

function peakRssGb(): number {
  return process.resourceUsage().maxRSS / 1024 / 1024;
}

interface Timed {
  steps: number;
  seconds: number;
  /** CPU seconds (user + system, all threads) per step: less sensitive to other load than wall time. */
  cpuPerStep: number;
  /** Minor page faults per step (fresh memory touched): independent of load. */
  faultsPerStep: number;
  /** The host's steal over the window, as a share of the machine's CPU time (host_steal.ts); null where unknown. */
  steal: number | null;
}

/** Runs `step` until `seconds` have passed (at least `minSteps` times) after one warm-up call. */
function timeSteps(step: () => void, seconds: number, minSteps: number): Timed {
  step();
  const t0 = performance.now();
  const r0 = process.resourceUsage();
  const ticks0 = cpuTicks();
  let steps = 0;
  while (steps < minSteps || (performance.now() - t0) / 1000 < seconds) {
    step();
    steps++;
  }
  const r1 = process.resourceUsage();
  const cpu = (r1.userCPUTime + r1.systemCPUTime - r0.userCPUTime - r0.systemCPUTime) / 1e6;
  return { steps, seconds: (performance.now() - t0) / 1000, cpuPerStep: cpu / steps, faultsPerStep: (r1.minorPageFault - r0.minorPageFault) / steps,
    steal: stealShare(ticks0, cpuTicks()) };
}

/** TF.js kernels that run no engine op (a reference count only). */
const JS_ONLY_KERNELS = new Set(["Identity"]);

/** Rows by time; where CPU time was measured (native ops), also how many cores the rows kept busy on average. */
function printTable(title: string, rows: Map<string, { calls: number; ms: number; cpuMs?: number }>, limit: number): void {
  console.log(title);
  for (const [name, e] of [...rows].sort((a, b) => b[1].ms - a[1].ms).slice(0, limit)) {
    const busy = e.cpuMs === undefined ? "" : ` | ${(e.cpuMs / e.ms).toFixed(2)} cores busy`;
    console.log(`  ${name.padEnd(40)} ${String(e.calls).padStart(6)} calls ${e.ms.toFixed(1).padStart(9)} ms${busy}`);
  }
}

/** One profiled training step, as bench/compare.ts reads it (--profile --json). */
export interface StepProfile {
  step_ms: number;
  tfjs_kernels: number;
  tfjs_js_only_kernels: number;
  tfjs_peak_mb: number;
  /** null on engines other than tfjs-node's. */
  native_ops: number | null;
  native_uploads: number | null;
  native_op_ms: number | null;
  native_wall_ms: number | null;
}

/**
 * One training step three ways: timed alone; under tf.profile (TF.js kernels per type); and, on the
 * native engine, with every libtensorflow op counted and timed (the step split into time inside
 * ops and the rest: tape, tidy, tensor bookkeeping, N-API calls, garbage collection).
 */
async function profileStep(step: () => void, print: boolean): Promise<StepProfile> {
  step();
  const t0 = performance.now();
  step();
  const stepMs = performance.now() - t0;
  if (print) console.log(`one step: ${stepMs.toFixed(0)} ms (unprofiled)`);
  const info = await tf.profile(step);
  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of info.kernels) {
    const e = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    byKernel.set(k.name, e);
  }
  const jsOnly = info.kernels.filter((k) => JS_ONLY_KERNELS.has(k.name)).length;
  const native = measureNativeOps(step);
  if (print) {
    console.log(`TF.js kernels per step (tf.profile): ${info.kernels.length} (${jsOnly} of them JS-only Identity, ${info.kernels.length - jsOnly} others) | ` +
      `TF.js-accounted peak ${(info.peakBytes / 1e6).toFixed(0)} MB | peak RSS ${peakRssGb().toFixed(2)} GB`);
    if (native !== null) {
      const rest = native.wallMs - native.opMs;
      console.log(`native ops per step: ${native.ops} (+ ${native.uploads} host tensor uploads) | step ${native.wallMs.toFixed(0)} ms: ` +
        `${native.opMs.toFixed(0)} ms inside ops (${((100 * native.opMs) / native.wallMs).toFixed(0)}%, ${(native.opCpuMs / native.opMs).toFixed(2)} cores busy), ` +
        `${rest.toFixed(0)} ms outside (${((native.cpuMs - native.opCpuMs) / rest).toFixed(2)} cores busy) | ${os.availableParallelism()} cores`);
      printTable("native ops by time:", native.byOp, 30);
    }
    printTable("TF.js kernels by time (custom ops show as \"unnamed scope\" and include their inner ops):", byKernel, 25);
  }
  return {
    step_ms: stepMs, tfjs_kernels: info.kernels.length, tfjs_js_only_kernels: jsOnly, tfjs_peak_mb: info.peakBytes / 1e6,
    native_ops: native?.ops ?? null, native_uploads: native?.uploads ?? null, native_op_ms: native?.opMs ?? null, native_wall_ms: native?.wallMs ?? null,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: "string", default: "b1" }, size: { type: "string", default: "32" }, batch: { type: "string", default: "64" },
      "eval-batch": { type: "string", default: "256" }, seconds: { type: "string", default: "30" },
      json: { type: "boolean", default: false }, profile: { type: "boolean", default: false }, eval: { type: "boolean", default: false } },
  });
  const model = values.model as ModelName;
  const size = Number(values.size);
  const batch = Number(values.batch);
  const evalBatch = Number(values["eval-batch"]);
  const seconds = Number(values.seconds);
  const info = await initBackend();
  if (!values.json) console.log(backendLine(info));
  const net = new BinaryClassifier(model, makeRng(0, "bench"));
  const training = benchTrainingStep(net, size, batch);
  const trainStep = training.step;
  const xe = tf.randomNormal([evalBatch, size, size, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  // The first step creates the optimizer's momentum buffers; count live tensors after it.
  trainStep();
  const evaluationBatch = benchEvalStep(net, xe);
  const evalStep = evaluationBatch.step;
  if (values.profile) {
    const profile = await profileStep(values.eval ? evalStep : trainStep, !values.json);
    if (values.json) console.log(JSON.stringify({ engine: `tfjs-${info.kind}`, size, batch, ...profile }));
    return;
  }
  const tensorsBefore = tf.memory().numTensors;
  const train = timeSteps(trainStep, seconds, 2);
  const trainRate = (train.steps * batch) / train.seconds;
  const trainPeak = peakRssGb();

  const evaluation = timeSteps(evalStep, seconds / 2, 1);
  const evalRate = (evaluation.steps * evalBatch) / evaluation.seconds;

  evaluationBatch.dispose();
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (values.json) {
    // One machine-readable line for bench/compare.ts (which runs each engine in its own process).
    console.log(JSON.stringify({ engine: `tfjs-${info.kind}`, backend: backendLine(info), size, batch, eval_batch: evalBatch,
      params: net.parameterCount(), train_img_s: trainRate, train_steps: train.steps, train_peak_rss_gb: trainPeak,
      train_cpu_s_per_step: train.cpuPerStep, train_faults_per_step: train.faultsPerStep, train_steal: train.steal,
      eval_img_s: evalRate, eval_cpu_s_per_batch: evaluation.cpuPerStep, eval_faults_per_batch: evaluation.faultsPerStep, eval_steal: evaluation.steal,
      peak_rss_gb: peakRssGb(), leaked_tensors: leaked }));
    return;
  }
  const ratio = (rate: number, [lo, hi]: readonly number[]) => `${(rate / hi).toFixed(3)}-${(rate / lo).toFixed(3)}`;
  console.log(`model ${model} + Linear(1000,1) | ${net.parameterCount().toLocaleString("en-US")} params | input ${size}x${size}`);
  const perStep = (t: Timed) => `${t.cpuPerStep.toFixed(2)} CPU s and ${Math.round(t.faultsPerStep)} page faults per step` +
    (t.steal === null ? "" : `; host steal ${stealText(t.steal)} of the machine's CPU time`);
  console.log(`train: ${trainRate.toFixed(2)} img/s (batch ${batch}, ${train.steps} steps in ${train.seconds.toFixed(1)} s; ${perStep(train)}) | peak RSS ${trainPeak.toFixed(2)} GB`);
  console.log(`eval:  ${evalRate.toFixed(2)} img/s (batch ${evalBatch}, ${evaluation.steps} batches in ${evaluation.seconds.toFixed(1)} s; ${perStep(evaluation)}) | peak RSS ${peakRssGb().toFixed(2)} GB`);
  if (model === "b1" && size === 32 && batch === 64) {
    console.log(`PyTorch CPU (FACTS.md, same machine kind): train ${PYTORCH_FACTS.train.join("-")} img/s, eval ${PYTORCH_FACTS.eval.join("-")} img/s, peak RSS 0.7 GB`);
    console.log(`ratio project/PyTorch: train ${ratio(trainRate, PYTORCH_FACTS.train)}, eval ${ratio(evalRate, PYTORCH_FACTS.eval)} (make bench-compare measures both side by side)`);
  }
  console.log(`tensors leaked across the benchmark: ${leaked}`);
  tf.dispose(xe);
  training.dispose();
  net.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
