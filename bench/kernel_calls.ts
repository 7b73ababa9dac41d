// Items 36-37 per call (docs/performance.md): this project's BatchNorm + SiLU forward and backward
// kernels on B1's 24 BatchNorm + SiLU shapes of the stem and the depthwise outputs, and the depthwise
// convolution's gradient on B1's 23 depthwise layers, at --size/--batch; prints the medians of
// --calls calls summed over the shapes, and the host's steal over the run (host_steal.ts). Changes
// to the kernels' threading keep their bits, so one build cannot hold both: run it in two checkouts
// (each with its own `make native`) in alternating processes.
//   node --import tsx bench/kernel_calls.ts [--size 240] [--batch 16] [--calls 25]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds the kernels to AVX2.
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { customOpsActive } from "../src/engine/custom_ops";
import { nativeCpuOps } from "../src/model/ops/native_backend";
import { customActAttr } from "../src/model/ops/native_batchnorm";
import { customDepthwiseAttrs } from "../src/model/ops/native_conv";
import { efficientNetArchitecture } from "../src/model/architecture";
import { convOutputSize } from "../src/model/ops/padding";
import { cpuTicks, stealShare, stealText } from "./host_steal";

const median = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];

/** The median ms of `calls` calls of each function, the functions alternating call by call. */
function medians(calls: number, fns: Array<() => tf.Tensor[]>): number[] {
  const times = fns.map(() => [] as number[]);
  for (let i = 0; i < calls; i++) {
    fns.forEach((f, j) => {
      const t0 = performance.now();
      tf.dispose(f());
      times[j].push(performance.now() - t0);
    });
  }
  return times.map(median);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "240" }, batch: { type: "string", default: "16" }, calls: { type: "string", default: "25" } } });
  const [size, n, calls] = [Number(values.size), Number(values.batch), Number(values.calls)];
  const info = await initBackend();
  const nb = nativeCpuOps();
  if (nb === null || !customOpsActive()) throw new Error(`needs the native engine with this project's kernels; this is ${backendLine(info)}`);
  const ticks0 = cpuTicks();
  const B = nb.binding;
  // The stem's BatchNorm input and each block's depthwise input and output, from the architecture.
  const arch = efficientNetArchitecture("b1");
  let h = convOutputSize(size, arch.stem.kernel, arch.stem.stride);
  const bnShapes: number[][] = [[n, h, h, arch.stem.outChannels]];
  const depthwise: Array<[number[], number, number]> = [];
  for (const b of arch.stages.flat()) {
    depthwise.push([[n, h, h, b.depthwise.inChannels], b.kernel, b.stride]);
    h = convOutputSize(h, b.kernel, b.stride);
    bnShapes.push([n, h, h, b.depthwise.inChannels]);
  }
  const act = [customActAttr(nb, true)];
  const stats = [{ name: "epsilon", type: B.TF_ATTR_FLOAT, value: 1e-3 }, { name: "momentum", type: B.TF_ATTR_FLOAT, value: 0.1 }, ...act];
  let [forward, backward, depthwiseGrad] = [0, 0, 0];
  for (const shape of bnShapes) {
    const c = shape[3];
    const [x, dy] = [tf.randomNormal(shape, 1, 2), tf.randomNormal(shape)];
    const [gamma, beta, mean, invstd] = [tf.randomNormal([c]), tf.randomNormal([c]), tf.randomNormal([c]), tf.randomUniform([c], 0.5, 1)];
    const [runningMean, runningVar] = [tf.zeros([c]), tf.ones([c])];
    const [f, g] = medians(calls, [
      () => nb.executeMultipleOutputs("BiasInitBatchNormAct", stats, [x, gamma, beta, runningMean, runningVar], 5),
      () => nb.executeMultipleOutputs("BiasInitBatchNormActGrad", act, [dy, x, gamma, beta, mean, invstd], 3),
    ]);
    [forward, backward] = [forward + f, backward + g];
    tf.dispose([x, dy, gamma, beta, mean, invstd, runningMean, runningVar]);
  }
  for (const [shape, k, s] of depthwise) {
    const oh = convOutputSize(shape[1], k, s);
    const [x, dy, w] = [tf.randomNormal(shape), tf.randomNormal([n, oh, oh, shape[3]]), tf.randomNormal([k, k, shape[3], 1])];
    const conv = customDepthwiseAttrs(nb, s, (k - 1) / 2);
    depthwiseGrad += medians(calls, [() => nb.executeMultipleOutputs("BiasInitDepthwiseConvGrad", conv, [dy, x, w], 2)])[0];
    tf.dispose([x, dy, w]);
  }
  const steal = stealShare(ticks0, cpuTicks());
  console.log(`${backendLine(info)} | B1 at ${size}x${size} batch ${n}, median of ${calls} calls per shape, summed`);
  console.log(`BatchNorm + SiLU forward ${forward.toFixed(1)} ms, backward ${backward.toFixed(1)} ms (${bnShapes.length} shapes) | ` +
    `depthwise gradients ${depthwiseGrad.toFixed(1)} ms (${depthwise.length} layers) | host steal ${stealText(steal)}`);
}

main();
