// Child of test/native_ops.test.ts and test/custom_ops_isa.test.ts: this project's kernels
// (BatchNorm + SiLU, the depthwise convolution, the two as one op, squeeze-excitation's passes, the
// projection's BatchNorm with the residual, the optimizer's momentum step,
// forward and gradients, and evaluation's depthwise stage, with and without the expansion) on fixed seeded inputs, in a process whose TensorFlow thread count
// (TF_NUM_INTRAOP_THREADS) and addon (BIAS_INIT_CUSTOM_OPS=avx2 or not) the parent sets. Prints
// {active, isa, hash}: a SHA-256 of every output's bytes, which must depend on neither (the kernels
// sum over fixed blocks, in order, and per channel at any vector width).
import { createHash } from "crypto";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../src/engine/backend";
import { customOpsActive, customOpsState } from "../../src/engine/custom_ops";
import { nativeOps } from "../../src/model/ops/native_backend";
import { customBatchNormResidual, nativeTrainingBatchNormAct } from "../../src/model/ops/native_batchnorm";
import { nativeBatchNormActDepthwise, nativeDepthwiseConvPadded } from "../../src/model/ops/native_conv";
import { nativeDepthwiseSilu, nativeExpandDepthwiseSilu } from "../../src/model/ops/native_eval_stage";
import { squeezeExcitation } from "../../src/model/ops/squeeze_excitation";
import { GroupedMomentumSgd } from "../../src/train/optimizer";
import { seededTensor } from "./tensors";

const seeded = (shape: number[], seed: number): tf.Tensor => seededTensor("kernel-threads", shape, seed);

async function main(): Promise<void> {
  await initBackend("native");
  const nb = nativeOps();
  if (nb === null || !customOpsActive()) {
    console.log(JSON.stringify({ active: false, isa: null, hash: "" }));
    return;
  }
  const hash = createHash("sha256");
  // Large enough that TensorFlow's pool splits the work: 4 x 40 x 40 rows of 40 channels (two
  // 16-wide vectors and one 8-wide in the AVX-512 addon, five 8-wide in the AVX2 one).
  const x = seeded([4, 40, 40, 40], 1) as tf.Tensor4D;
  const dy = seeded([4, 40, 40, 40], 2);
  const gamma = seeded([40], 3), beta = seeded([40], 4);
  const bn = { runningMean: tf.variable(tf.zeros([40]), false), runningVar: tf.variable(tf.ones([40]), false), eps: 1e-3, momentum: 0.1 };
  const outputs: tf.Tensor[] = [];
  outputs.push(...tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(nativeTrainingBatchNormAct(nb, a as tf.Tensor4D, { ...bn, gamma: g, beta: b }, true, true), dy)))([x, gamma, beta]));
  outputs.push(bn.runningMean, bn.runningVar);
  for (const [k, stride] of [[3, 1], [5, 2]]) {
    const w = seeded([k, k, 40, 1], 10 + k);
    const y = nativeDepthwiseConvPadded(nb, x, w as tf.Tensor4D, stride, (k - 1) / 2);
    outputs.push(y, ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nativeDepthwiseConvPadded(nb, a as tf.Tensor4D, b as tf.Tensor4D, stride, (k - 1) / 2), seeded(y.shape, 20 + k))))([x, w]));
  }
  // BatchNorm + SiLU and the depthwise convolution after it as one op (strides 1 and 2), whose
  // backward pass is one op too at stride 1.
  const wf = seeded([3, 3, 40, 1], 60) as tf.Tensor4D;
  outputs.push(nativeBatchNormActDepthwise(nb, x, { ...bn, gamma, beta }, false, true, wf, 1, 1),
    nativeBatchNormActDepthwise(nb, x, { ...bn, gamma, beta }, false, true, seeded([5, 5, 40, 1], 61) as tf.Tensor4D, 2, 2));
  outputs.push(...tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w: tf.Tensor) =>
    tf.sum(tf.mul(nativeBatchNormActDepthwise(nb, a as tf.Tensor4D, { ...bn, gamma: g, beta: b }, false, true, w as tf.Tensor4D, 1, 1), dy)))([x, gamma, beta, wf]));
  const se = { w1: seeded([40, 10], 30) as tf.Tensor2D, b1: seeded([10], 31) as tf.Tensor1D, w2: seeded([10, 40], 32) as tf.Tensor2D, b2: seeded([40], 33) as tf.Tensor1D };
  outputs.push(...tf.grads((a: tf.Tensor) => tf.sum(tf.mul(squeezeExcitation(a as tf.Tensor4D, se), dy)))([x]));
  // The projection's BatchNorm, stochastic depth's row factor and the residual sum as one op (its
  // gradient is BatchNorm's with the factor as scale).
  const factors = Float32Array.from([1.25, 0, 1.25, 1.25]);
  outputs.push(...tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, r: tf.Tensor) =>
    tf.sum(tf.mul(customBatchNormResidual(nb, a as tf.Tensor4D, { ...bn, gamma: g, beta: b }, false, factors, r as tf.Tensor4D), dy)))([x, gamma, beta, seeded([4, 40, 40, 40], 70)]));
  // Evaluation's depthwise stage (its input's SiLU, the convolution, shift, SiLU and the mean).
  for (const [k, stride, inputSilu] of [[3, 1, true], [5, 2, false]] as Array<[number, number, boolean]>) {
    const r = nativeDepthwiseSilu(nb, x, seeded([k, k, 40, 1], 40 + k) as tf.Tensor4D, seeded([40], 50 + k) as tf.Tensor1D, stride, inputSilu);
    outputs.push(r.y, r.pooled);
  }
  // The same with the expansion inside: x's 40x40 images expanded to 168 channels (over 1 MB an
  // image, so row by row; vectors of 16 and 8; rows of 40 positions, 6 at a time and 4 left), and 8
  // small images expanded to 56, whole, in groups of 4 images with one thread and of 2 with two.
  const expansion = (c: number) => {
    const weight = seeded([40, c], c);
    return { weight, filter: tf.reshape(weight, [1, 1, 40, c]) as tf.Tensor4D, shift: seeded([c], c + 1) as tf.Tensor1D };
  };
  for (const [input, c, k, stride] of [[x, 168, 3, 1], [x, 168, 5, 2], [seeded([8, 6, 6, 40], 62), 56, 3, 1]] as Array<[tf.Tensor4D, number, number, number]>) {
    const r = nativeExpandDepthwiseSilu(nb, input, expansion(c), seeded([k, k, c, 1], 58 + k) as tf.Tensor4D, seeded([c], 59 + k) as tf.Tensor1D, stride);
    outputs.push(r.y, r.pooled);
  }
  // Two SGD-momentum steps of one group of parameters (one op each, the second with a buffer).
  const params = [[3, 3, 40, 1], [3, 3, 21, 1]].map((shape, i) => ({ name: `p${i}`, variable: tf.variable(seeded(shape, 80 + i), true, `kernel-threads-p${i}`) }));
  const opt = new GroupedMomentumSgd(0.1, 0.9, params);
  for (const s of [0, 1]) opt.applyGradients(params.map((p, i) => ({ name: p.variable.name, tensor: seeded(p.variable.shape, 90 + 2 * s + i) })));
  outputs.push(...params.map((p) => p.variable), ...opt.state().map((e) => e.tensor));
  for (const t of outputs) hash.update(Buffer.from((t.dataSync() as Float32Array).buffer));
  console.log(JSON.stringify({ active: true, isa: customOpsState().isa, hash: hash.digest("hex") }));
}

main();
