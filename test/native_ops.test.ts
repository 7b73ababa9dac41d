// The native backend's training ops (src/model/ops/native_*.ts) against TF.js's own formulation of
// the same math on the same backend, values and gradients: the strided depthwise convolution with
// explicit padding against pad + 'valid' convolution, the one-pass SiLU against x * sigmoid(x) and
// float64, training BatchNorm + SiLU against tf.moments / batchNorm / sigmoid, this project's
// kernels against TensorFlow's ops and at one and two threads. Evaluation's ops:
// test/native_eval.test.ts. Skipped where no native backend is built (`make native`);
// test/backends.test.ts checks the whole model against pure JS.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { nativeDir } from "../src/engine/backend";
import { customOpsActive, customOpsState, overrideCustomOps } from "../src/engine/custom_ops";
import { NativeKernelBackend } from "../src/model/ops/native_backend";
import { nativeDepthwiseConvPadded } from "../src/model/ops/native_conv";
import { nativeSilu, nativeTrainingBatchNormAct } from "../src/model/ops/native_batchnorm";
import { squeezeExcitation, squeezeExcitationGate } from "../src/model/ops/squeeze_excitation";
import { customSqueezeGate, setSqueezeGateKernel } from "../src/model/ops/native_eval";
import { relDiff, seededTensor } from "./helpers/tensors";
import { loadNativeForTests } from "./helpers/native_backend";

let nb: NativeKernelBackend | null = null;
let why = "";

before(async () => {
  ({ nb, why } = await loadNativeForTests());
});

const randomTensor = (shape: number[], seed: number, scale = 1): tf.Tensor => seededTensor("native-ops-test", shape, seed, scale);

/** Values and gradients of sum(f(inputs) * dy) for two formulations, compared. */
function assertSameOp(name: string, f: (...xs: tf.Tensor[]) => tf.Tensor, ref: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], gradTol: number, valueTol = 0): void {
  tf.tidy(() => {
    const y = f(...inputs);
    const yRef = ref(...inputs);
    assert.deepEqual(y.shape, yRef.shape, `${name}: shape`);
    assert.ok(relDiff(y, yRef) <= valueTol, `${name}: values differ by ${relDiff(y, yRef)} (relative)`);
    const dy = randomTensor(y.shape, 99);
    const g = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), dy)))(inputs);
    const gRef = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(ref(...xs), dy)))(inputs);
    g.forEach((gi, i) => assert.ok(relDiff(gi, gRef[i]) <= gradTol, `${name}: gradient ${i} differs by ${relDiff(gi, gRef[i])} (relative)`));
  });
}

/** f with this project's kernels on (true) or TensorFlow's own ops (false). */
function withCustomOps<T>(custom: boolean, f: () => T): T {
  overrideCustomOps(custom);
  try {
    return f();
  } finally {
    overrideCustomOps(null);
  }
}

/** Padded input, then TF.js's 'valid' depthwise convolution. */
function paddedDepthwise(x: tf.Tensor, w: tf.Tensor, stride: number, p: number): tf.Tensor {
  return tf.depthwiseConv2d(tf.pad(x as tf.Tensor4D, [[0, 0], [p, p], [p, p], [0, 0]]), w as tf.Tensor4D, stride as 1 | 2, "valid");
}

test("strided depthwise convolution with explicit padding = pad + 'valid' convolution (values bit-identical)", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  for (const k of [3, 5]) {
    const p = (k - 1) / 2;
    assertSameOp(`depthwise k${k} s2`, (x, w) => withCustomOps(false, () => nativeDepthwiseConvPadded(native, x as tf.Tensor4D, w as tf.Tensor4D, 2, p)),
      (x, w) => paddedDepthwise(x, w, 2, p), [randomTensor([2, 9, 11, 6], 1), randomTensor([k, k, 6, 1], 2)], 1e-5);
  }
});

test("one-pass SiLU = x * sigmoid(x), and within 2e-7 of float64 where the two-op form is within 6e-7", (t) => {
  if (nb === null) return t.skip(why);
  const x = randomTensor([200_000], 3, 6);
  const y = nativeSilu(nb, x);
  const twoOps = tf.mul(x, tf.sigmoid(x));
  const xs = x.dataSync();
  const worst = (v: ArrayLike<number>) => Array.from(xs).reduce((m, xi, i) => {
    const exact = xi / (1 + Math.exp(-xi));
    return Math.max(m, Math.abs(v[i] - exact) / Math.max(1e-30, Math.abs(exact)));
  }, 0);
  assert.ok(worst(y.dataSync()) < 2e-7, `one pass: ${worst(y.dataSync())}`);
  assert.ok(worst(twoOps.dataSync()) < 6e-7, `two ops: ${worst(twoOps.dataSync())}`);
  tf.dispose([x, y, twoOps]);
});

test("training BatchNorm + SiLU as one op = tf.moments, batchNorm and x * sigmoid(x), values and gradients", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  const c = 5;
  const runningMean = tf.variable(tf.zeros([c]), false);
  const runningVar = tf.variable(tf.ones([c]), false);
  for (const activation of [true, false]) {
    assertSameOp(`batchNorm silu=${activation}`,
      (x, g, b) => nativeTrainingBatchNormAct(native, x as tf.Tensor4D, { gamma: g, beta: b, runningMean, runningVar, eps: 1e-5, momentum: 0.1 }, false, activation),
      (x, g, b) => {
        const { mean, variance } = tf.moments(x, [0, 1, 2]);
        const z = tf.batchNorm4d(x as tf.Tensor4D, mean as tf.Tensor1D, variance as tf.Tensor1D, b as tf.Tensor1D, g as tf.Tensor1D, 1e-5);
        return activation ? tf.mul(z, tf.sigmoid(z)) : z;
      },
      [randomTensor([3, 4, 6, c], 4, 2), randomTensor([c], 5), randomTensor([c], 6)], 1e-4, 1e-5);
  }
  tf.dispose([runningMean, runningVar]);
});

/**
 * Whether this project's kernels must be active here, asserted: where build.sh recorded them (READY)
 * and the CPU has AVX2 and FMA, a file that went missing or a load that failed fails the test
 * instead of skipping it. Returns why they are not expected, or null.
 */
function assertCustomOpsWhereExpected(): string | null {
  const ready = JSON.parse(fs.readFileSync(path.join(nativeDir(), "READY"), "utf8")) as { customOps?: string };
  const flags = /^flags\s*:(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1].split(/\s+/) ?? [];
  const expected = (ready.customOps ?? "none") !== "none" && flags.includes("avx2") && flags.includes("fma") && process.env.BIAS_INIT_CUSTOM_OPS === undefined;
  assert.equal(customOpsActive(), expected, `kernels active: ${customOpsActive()}; ${customOpsState().reason}`);
  return expected ? null : `not expected here: ${customOpsState().reason}`;
}

test("this project's depthwise convolution kernels = TF.js's depthwise convolution of the zero-padded input, values and gradients, k 1, 3, 5 and 7, strides 1 and 2, pads 0 to k + 1 at stride 1", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  const notExpected = assertCustomOpsWhereExpected();
  if (notExpected !== null) return t.skip(notExpected);
  // 13 channels: one 8-wide vector and a scalar tail; 24: three vectors; 2x3 inputs: windows wider
  // than the input. 9x11 and 8x7 rows hold outputs that the kernels take 4 at a time and single ones.
  // Pads other than PyTorch's (k - 1) / 2 at stride 1, where dx runs the forward's row code reversed:
  // 0, and k + 1, where some dx columns see no dy at all and the rows read are wider than dx's.
  // 16x17x40: enough work for TensorFlow to split the rows between two threads.
  const inputs: Array<[number[], number]> = [[[2, 9, 11, 13], 40], [[3, 8, 7, 24], 50], [[2, 2, 3, 16], 60], [[2, 16, 17, 40], 70]];
  for (const [shape, seed] of inputs) {
    for (const k of [1, 3, 5, 7]) {
      for (const [stride, p] of [[1, (k - 1) / 2], [2, (k - 1) / 2], [1, 0], [1, k + 1]]) {
        if (shape[1] + 2 * p < k || shape[2] + 2 * p < k) continue;
        assertSameOp(`custom depthwise ${JSON.stringify(shape)} k${k} s${stride} p${p}`,
          (x, w) => withCustomOps(true, () => nativeDepthwiseConvPadded(native, x as tf.Tensor4D, w as tf.Tensor4D, stride, p)),
          (x, w) => paddedDepthwise(x, w, stride, p), [randomTensor(shape, seed), randomTensor([k, k, shape[3], 1], seed + 1)], 1e-5, 1e-6);
      }
    }
  }
});

test("squeeze-excitation with this project's kernels = with TensorFlow's ops: values and gradients at float round-off", (t) => {
  if (nb === null) return t.skip(why);
  const notExpected = assertCustomOpsWhereExpected();
  if (notExpected !== null) return t.skip(notExpected);
  // The gate op's products run over S or C in vectors (16 and 8 wide, then a scalar tail): S 4 (tail
  // only), 10 and 20 (a vector and a tail); C 13, 24, 40 and 50.
  for (const [shape, s, seed] of [[[2, 9, 11, 13], 4, 70], [[3, 8, 7, 24], 4, 80], [[4, 5, 6, 40], 10, 90], [[5, 3, 4, 50], 20, 100]] as Array<[number[], number, number]>) {
    const c = shape[3];
    const se = (custom: boolean) => (x: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor): tf.Tensor => withCustomOps(custom,
      () => squeezeExcitation(x as tf.Tensor4D, { w1: w1 as tf.Tensor2D, b1: b1 as tf.Tensor1D, w2: w2 as tf.Tensor2D, b2: b2 as tf.Tensor1D }));
    assertSameOp(`squeeze-excitation ${JSON.stringify(shape)}, S ${s}`, se(true), se(false),
      [randomTensor(shape, seed, 2), randomTensor([c, s], seed + 1), randomTensor([s], seed + 2), randomTensor([s, c], seed + 3), randomTensor([c], seed + 4)], 1e-5, 1e-6);
    // Evaluation's gate alone: the one op (item 38) against TensorFlow's _FusedMatMul, SoftplusGrad and sigmoid.
    tf.tidy(() => {
      const x = randomTensor(shape, seed + 5, 2) as tf.Tensor4D;
      const p = { w1: randomTensor([c, s], seed + 6) as tf.Tensor2D, b1: randomTensor([s], seed + 7) as tf.Tensor1D, w2: randomTensor([s, c], seed + 8) as tf.Tensor2D, b2: randomTensor([c], seed + 9) as tf.Tensor1D };
      const gate = (on: boolean): tf.Tensor => {
        setSqueezeGateKernel(on);
        try {
          return squeezeExcitationGate(x, p);
        } finally {
          setSqueezeGateKernel(true);
        }
      };
      assert.ok(relDiff(gate(true), gate(false)) <= 1e-6, `gate ${JSON.stringify(shape)}, S ${s}: differs by ${relDiff(gate(true), gate(false))}`);
    });
  }
  // Shapes that do not fit are refused with the operand named.
  const native = nb;
  assert.throws(() => customSqueezeGate(native, tf.zeros([2, 8]), { w1: tf.zeros([8, 4]), b1: tf.zeros([4]), w2: tf.zeros([4, 9]), b2: tf.zeros([8]) }), /w2 must be \[4, 8\]/);
});

test("this project's kernels give the same bits with one TensorFlow thread and with two", (t) => {
  if (nb === null) return t.skip(why);
  const notExpected = assertCustomOpsWhereExpected();
  if (notExpected !== null) return t.skip(notExpected);
  const runs = ["1", "2"].map((threads) => {
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "helpers", "kernel_threads.ts")],
      { env: { ...process.env, BIAS_INIT_BACKEND: "native", TF_NUM_INTRAOP_THREADS: threads }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").pop() as string) as { active: boolean; hash: string };
  });
  assert.ok(runs.every((r) => r.active), JSON.stringify(runs));
  assert.equal(runs[0].hash, runs[1].hash);
});

test("this project's BatchNorm + SiLU kernels: loaded wherever they can be; values, gradients and running statistics = TensorFlow's FusedBatchNormV3 path", (t) => {
  if (nb === null) return t.skip(why);
  const native = nb;
  const notExpected = assertCustomOpsWhereExpected();
  if (notExpected !== null) return t.skip(notExpected);
  // 13 channels: one 8-wide vector and 5 by the scalar tail; 24: three vectors; rows 105 and 162: partial blocks of 64.
  for (const [shape, seed] of [[[3, 5, 7, 13], 20], [[2, 9, 9, 24], 30]] as Array<[number[], number]>) {
    const c = shape[3];
    for (const activation of [true, false]) {
      const run = (custom: boolean, x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, bn: { runningMean: tf.Variable; runningVar: tf.Variable }, update = false): tf.Tensor =>
        withCustomOps(custom, () => nativeTrainingBatchNormAct(native, x as tf.Tensor4D, { gamma: g, beta: b, ...bn, eps: 1e-3, momentum: 0.1 }, update, activation));
      const stats = () => ({ runningMean: tf.variable(randomTensor([c], seed + 3), false), runningVar: tf.variable(tf.add(1, tf.abs(randomTensor([c], seed + 4))), false) });
      const [ours, theirs] = [stats(), stats()];
      const inputs = [tf.add(randomTensor(shape, seed, 3), 2), randomTensor([c], seed + 1), randomTensor([c], seed + 2)];
      assertSameOp(`custom kernels ${JSON.stringify(shape)} silu=${activation}`, (x, g, b) => run(true, x, g, b, ours), (x, g, b) => run(false, x, g, b, theirs), inputs, 1e-5, 2e-6);
      tf.dispose([run(true, inputs[0], inputs[1], inputs[2], ours, true), run(false, inputs[0], inputs[1], inputs[2], theirs, true)]);
      assert.ok(relDiff(ours.runningMean, theirs.runningMean) < 1e-6, `running mean: ${relDiff(ours.runningMean, theirs.runningMean)}`);
      assert.ok(relDiff(ours.runningVar, theirs.runningVar) < 1e-6, `running var: ${relDiff(ours.runningVar, theirs.runningVar)}`);
      tf.dispose([ours.runningMean, ours.runningVar, theirs.runningMean, theirs.runningVar, ...inputs]);
    }
  }
});
