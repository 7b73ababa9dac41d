// Items 32-33 per call (docs/performance.md): BiasInitBatchNormActDepthwise against the two ops it
// replaced (BatchNormAct, DepthwiseConv) and BiasInitBatchNormActDepthwiseGrad against its three
// (Apply, DepthwiseConvGrad, BatchNormActGrad), alternating call by call on B1's stride-1 shapes at
// 240x240 batch 16; prints the medians and whether the outputs are the same bits.
//   node --import tsx bench/bn_dw_calls.ts [--calls 60]
// `ONEDNN_MAX_CPU_ISA=AVX2 BIAS_INIT_CUSTOM_OPS=avx2` in front holds the kernels to AVX2.
import { parseArgs } from "util";
import * as tf from "@tensorflow/tfjs";
import { initBackend, backendLine } from "../src/engine/backend";
import { customOpsActive } from "../src/engine/custom_ops";
import { nativeCpuOps } from "../src/model/ops/native_backend";
import { customDepthwiseAttrs } from "../src/model/ops/native_conv";
import { customActAttr } from "../src/model/ops/native_batchnorm";

const SHAPES: Array<[number[], number]> = [[[16, 60, 60, 144], 3], [[16, 30, 30, 240], 5], [[16, 15, 15, 480], 3], [[16, 15, 15, 672], 5], [[16, 8, 8, 1920], 3]];

async function main(): Promise<void> {
  const calls = Number(parseArgs({ options: { calls: { type: "string", default: "60" } } }).values.calls);
  const info = await initBackend();
  const nb = nativeCpuOps();
  if (nb === null || !customOpsActive()) throw new Error(`needs the native engine with this project's kernels; this is ${backendLine(info)}`);
  console.log(`${backendLine(info)} | ${calls} calls of each per shape, alternating`);
  const median = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
  for (const [shape, k] of SHAPES) {
    const c = shape[3];
    const [e, dd] = [tf.randomNormal(shape, 1, 2), tf.randomNormal(shape)];
    const [gamma, beta, mean, invstd] = [tf.randomNormal([c]), tf.randomNormal([c]), tf.randomNormal([c]), tf.randomUniform([c], 0.5, 1)];
    const w = tf.randomNormal([k, k, c, 1]);
    const conv = customDepthwiseAttrs(nb, 1, (k - 1) / 2);
    const act = [customActAttr(nb, true)];
    const B = nb.binding;
    const stats = [{ name: "epsilon", type: B.TF_ATTR_FLOAT, value: 1e-3 }, { name: "momentum", type: B.TF_ATTR_FLOAT, value: 0.1 }, ...act];
    const [runningMean, runningVar] = [tf.zeros([c]), tf.ones([c])];
    const pairs: Array<[string, () => tf.Tensor[], () => tf.Tensor[]]> = [
      ["forward", () => nb.executeMultipleOutputs("BiasInitBatchNormActDepthwise", [...stats, ...conv], [e, gamma, beta, runningMean, runningVar, w], 5), () => {
        const [y, ...rest] = nb.executeMultipleOutputs("BiasInitBatchNormAct", stats, [e, gamma, beta, runningMean, runningVar], 5);
        const d = nb.executeMultipleOutputs("BiasInitDepthwiseConv", conv, [y, w], 1);
        y.dispose();
        return [...d, ...rest];
      }],
      ["backward", () => nb.executeMultipleOutputs("BiasInitBatchNormActDepthwiseGrad", [...conv, ...act], [dd, e, gamma, beta, mean, invstd, w], 4), () => {
        const [y] = nb.executeMultipleOutputs("BiasInitBatchNormActApply", act, [e, gamma, beta, mean, invstd], 1);
        const [dy, dw] = nb.executeMultipleOutputs("BiasInitDepthwiseConvGrad", conv, [dd, y, w], 2);
        const out = nb.executeMultipleOutputs("BiasInitBatchNormActGrad", act, [dy, e, gamma, beta, mean, invstd], 3);
        tf.dispose([y, dy]);
        return [...out, dw];
      }],
    ];
    const line: string[] = [];
    for (const [what, fused, split] of pairs) {
      const [a, b] = [fused(), split()];
      const same = a.every((t, i) => Buffer.from(t.dataSync().buffer).equals(Buffer.from(b[i].dataSync().buffer)));
      tf.dispose([...a, ...b]);
      const times: [number[], number[]] = [[], []];
      for (let i = 0; i < calls; i++) {
        [fused, split].forEach((f, j) => {
          const t0 = performance.now();
          tf.dispose(f());
          times[j].push(performance.now() - t0);
        });
      }
      line.push(`${what} fused ${median(times[0]).toFixed(2)} ms, split ${median(times[1]).toFixed(2)} ms (same bits: ${same})`);
    }
    console.log(`${JSON.stringify(shape)} k${k}: ${line.join("; ")}`);
    tf.dispose([runningMean, runningVar]);
    tf.dispose([e, dd, gamma, beta, mean, invstd, w]);
  }
}

main();
