// The native backend's custom ops (src/model/ops/native_*.ts) against TF.js's own formulation of
// the same math on the same backend, values and gradients: the strided depthwise convolution with
// explicit padding against pad + 'valid' convolution, the one-pass SiLU against x * sigmoid(x) and
// float64, training BatchNorm + SiLU against tf.moments / batchNorm / sigmoid, evaluation BatchNorm
// (+ SiLU) against tf.batchNorm4d and float64, and folded into each kind of convolution against
// convolution then BatchNorm, once per call or once per evaluation pass (EvalFolds). Skipped where no
// native backend is built (`make native`); test/backends.test.ts checks the whole model against pure JS.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { initBackend, nativeDir } from "../src/engine/backend";
import { customOpsActive, customOpsState, overrideCustomOps } from "../src/engine/custom_ops";
import { nativeOps, NativeKernelBackend } from "../src/model/ops/native_backend";
import { nativeDepthwiseConvPadded } from "../src/model/ops/native_conv";
import { nativeInferenceBatchNormAct, nativeSilu, nativeTrainingBatchNormAct } from "../src/model/ops/native_batchnorm";
import { EvalFolds, FOLD_MIN_POSITIONS, foldsInputScale, FUSED_CONV_MIN_POSITIONS, fusedFilter, fusesOnCpu, nativeFusedConv, oneDnnKernels, setFoldInputScale } from "../src/model/ops/native_eval";
import { squeezeExcitation, squeezeExcitationGate } from "../src/model/ops/squeeze_excitation";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import { convBnAct, ConvSpec, pointwiseConv, symmetricConv, symmetricDepthwiseConv } from "../src/model/ops/layers";
import { relDiff, seededTensor } from "./helpers/tensors";

let nb: NativeKernelBackend | null = null;
let why = "";

before(async () => {
  try {
    await initBackend("native");
    nb = nativeOps();
  } catch (e) {
    why = (e as Error).message.split("\n")[0];
  }
});

const randomTensor = (shape: number[], seed: number, scale = 1): tf.Tensor => seededTensor("native-ops-test", shape, seed, scale);

interface ConvCase {
  conv: ConvSpec;
  cin: number;
  cout: number;
}

/** One convolution of each kind and stride evaluation folds: 1x1, depthwise at strides 1 and 2, full at stride 2. */
function convCases(seed: number): ConvCase[] {
  return [
    { conv: { kind: "pointwise", weight: randomTensor([6, 10], seed, 0.5), stride: 1 }, cin: 6, cout: 10 },
    { conv: { kind: "depthwise", weight: randomTensor([3, 3, 6, 1], seed + 1, 0.5), stride: 1 }, cin: 6, cout: 6 },
    { conv: { kind: "depthwise", weight: randomTensor([5, 5, 6, 1], seed + 2, 0.5), stride: 2 }, cin: 6, cout: 6 },
    { conv: { kind: "full", weight: randomTensor([3, 3, 6, 4], seed + 3, 0.5), stride: 2 }, cin: 6, cout: 4 },
  ];
}

/** The convolution alone, through the layer API's unfolded ops (PyTorch's padding). */
function plainConv(x: tf.Tensor4D, conv: ConvSpec): tf.Tensor4D {
  return conv.kind === "pointwise" ? pointwiseConv(x, conv.weight as tf.Tensor2D)
    : conv.kind === "depthwise" ? symmetricDepthwiseConv(x, conv.weight as tf.Tensor4D, conv.stride) : symmetricConv(x, conv.weight as tf.Tensor4D, conv.stride);
}

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
  if (nb === null) return t.skip(`no native backend (${why})`);
  const native = nb;
  for (const k of [3, 5]) {
    const p = (k - 1) / 2;
    assertSameOp(`depthwise k${k} s2`, (x, w) => withCustomOps(false, () => nativeDepthwiseConvPadded(native, x as tf.Tensor4D, w as tf.Tensor4D, 2, p)),
      (x, w) => paddedDepthwise(x, w, 2, p), [randomTensor([2, 9, 11, 6], 1), randomTensor([k, k, 6, 1], 2)], 1e-5);
  }
});

test("one-pass SiLU = x * sigmoid(x), and within 2e-7 of float64 where the two-op form is within 6e-7", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
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
  if (nb === null) return t.skip(`no native backend (${why})`);
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
  if (nb === null) return t.skip(`no native backend (${why})`);
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

test("squeeze-excitation with this project's kernels = with TensorFlow's ops: values bit-identical, gradients", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
  const notExpected = assertCustomOpsWhereExpected();
  if (notExpected !== null) return t.skip(notExpected);
  for (const [shape, seed] of [[[2, 9, 11, 13], 70], [[3, 8, 7, 24], 80]] as Array<[number[], number]>) {
    const c = shape[3];
    const se = (custom: boolean) => (x: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor): tf.Tensor => withCustomOps(custom,
      () => squeezeExcitation(x as tf.Tensor4D, { w1: w1 as tf.Tensor2D, b1: b1 as tf.Tensor1D, w2: w2 as tf.Tensor2D, b2: b2 as tf.Tensor1D }));
    assertSameOp(`squeeze-excitation ${JSON.stringify(shape)}`, se(true), se(false),
      [randomTensor(shape, seed, 2), randomTensor([c, 4], seed + 1), randomTensor([4], seed + 2), randomTensor([4, c], seed + 3), randomTensor([c], seed + 4)], 1e-5);
  }
});

test("this project's kernels give the same bits with one TensorFlow thread and with two", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
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
  if (nb === null) return t.skip(`no native backend (${why})`);
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

test("evaluation BatchNorm + SiLU (x * alpha + shift, PyTorch's form) = tf.batchNorm4d with the running statistics, and float64", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
  const c = 7;
  const x = randomTensor([3, 5, 4, c], 7, 3) as tf.Tensor4D;
  const gamma = randomTensor([c], 8);
  const beta = randomTensor([c], 9);
  const runningMean = tf.variable(randomTensor([c], 10), false);
  const runningVar = tf.variable(tf.add(tf.abs(randomTensor([c], 11)), 0.2), false);
  const bn = { gamma, beta, runningMean, runningVar, eps: 1e-5, momentum: 0.1 };
  const [xs, g, b, m, v] = [x, gamma, beta, runningMean, runningVar].map((a) => a.dataSync());
  for (const activation of [true, false]) {
    const y = nativeInferenceBatchNormAct(nb, x, bn, activation);
    const z = tf.batchNorm4d(x, runningMean as tf.Tensor1D, runningVar as tf.Tensor1D, beta as tf.Tensor1D, gamma as tf.Tensor1D, 1e-5);
    const ref = activation ? tf.mul(z, tf.sigmoid(z)) : z;
    assert.deepEqual(y.shape, x.shape);
    assert.ok(relDiff(y, ref) < 2e-6, `silu=${activation}: against tf.batchNorm4d ${relDiff(y, ref)} (relative)`);
    // float64: (x - mean) / sqrt(var + eps) * gamma + beta, then x * sigmoid(x).
    const ys = y.dataSync();
    let worst = 0;
    for (let i = 0; i < xs.length; i++) {
      const k = i % c;
      const zi = ((xs[i] - m[k]) / Math.sqrt(v[k] + 1e-5)) * g[k] + b[k];
      const exact = activation ? zi / (1 + Math.exp(-zi)) : zi;
      worst = Math.max(worst, Math.abs(ys[i] - exact));
    }
    assert.ok(worst < 1e-5 * Math.max(...Array.from(ys, Math.abs)), `silu=${activation}: against float64 ${worst}`);
    tf.dispose([y, z, ref]);
  }
  tf.dispose([x, gamma, beta, runningMean, runningVar]);
});

test("evaluation convolution + BatchNorm (+ SiLU) with BatchNorm folded into the weights = convolution then BatchNorm, for every kind", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
  const cases: Array<ConvCase & { spatial?: [number, number] }> = convCases(12);
  // 9x11 positions: every convolution + SiLU runs as oneDNN's fused op; 3x3 (fewer than
  // FUSED_CONV_MIN_POSITIONS): a 1x1 one as _FusedMatMul + SoftplusGrad.
  cases.push({ ...cases[0], spatial: [3, 3] });
  for (const { conv, cin, cout, spatial = [9, 11] } of cases) {
    const x = randomTensor([2, spatial[0], spatial[1], cin], 16) as tf.Tensor4D;
    const bn = {
      gamma: randomTensor([cout], 17), beta: randomTensor([cout], 18), eps: 1e-5, momentum: 0.1,
      runningMean: tf.variable(randomTensor([cout], 19), false), runningVar: tf.variable(tf.add(tf.abs(randomTensor([cout], 20)), 0.2), false),
    };
    for (const activation of [true, false]) {
      const folded = convBnAct(x, conv, bn, { training: false, updateRunningStats: false }, activation);
      // The unfolded reference: the convolution, then tf.batchNorm4d with the running statistics.
      const y = plainConv(x, conv);
      const z = tf.batchNorm4d(y, bn.runningMean as tf.Tensor1D, bn.runningVar as tf.Tensor1D, bn.beta as tf.Tensor1D, bn.gamma as tf.Tensor1D, 1e-5);
      const unfolded = activation ? tf.mul(z, tf.sigmoid(z)) : z;
      assert.deepEqual(folded.shape, unfolded.shape);
      assert.ok(relDiff(folded, unfolded) < 2e-6, `${conv.kind} stride ${conv.stride} silu=${activation}: ${relDiff(folded, unfolded)} (relative)`);
      tf.dispose([folded, y, z, unfolded]);
    }
    tf.dispose([x, bn.gamma, bn.beta, bn.runningMean, bn.runningVar]);
  }
  tf.dispose(cases.map((c) => c.conv.weight));
});

test("oneDNN's fused convolution (+ SiLU) = the Eigen ops it replaces, for every kind and stride; it is what evaluation runs on this engine, and not with TF_ENABLE_ONEDNN_OPTS=0", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
  // TF's x86 builds carry the kernel (tools/native/verify.cjs records it in .native/READY); CI runs on x86.
  if (process.arch === "x64") assert.equal(oneDnnKernels(nb), true, "this x86 engine runs _MklNativeFusedConv2D and _MklBatchMatMulV2 by name");
  if (!oneDnnKernels(nb)) return t.skip("this libtensorflow has no oneDNN fused convolution");
  const saved = process.env.TF_ENABLE_ONEDNN_OPTS;
  process.env.TF_ENABLE_ONEDNN_OPTS = "0";
  assert.equal(oneDnnKernels(nb), false, "oneDNN off: the Eigen path (the fused op would run 5-25x slower)");
  if (saved === undefined) delete process.env.TF_ENABLE_ONEDNN_OPTS;
  else process.env.TF_ENABLE_ONEDNN_OPTS = saved;
  assert.equal(fusesOnCpu("pointwise", true, FUSED_CONV_MIN_POSITIONS), true);
  assert.equal(fusesOnCpu("pointwise", true, FUSED_CONV_MIN_POSITIONS - 1), false);
  assert.equal(fusesOnCpu("pointwise", false, 10_000), false, "a 1x1 convolution without SiLU stays _FusedMatMul");
  assert.ok(fusesOnCpu("depthwise", true, 1) && fusesOnCpu("full", false, 1));
  const cases = convCases(40);
  for (const { conv, cin, cout } of cases) {
    const { kind, weight, stride } = conv;
    for (const [h, w] of [[9, 11], [8, 8], [1, 1]]) {
      tf.tidy(() => {
        const x = randomTensor([3, h, w, cin], 44) as tf.Tensor4D;
        const shift = randomTensor([cout], 45) as tf.Tensor1D;
        for (const activation of [true, false]) {
          const fused = nativeFusedConv(nb!, x, fusedFilter(kind, weight), shift, stride, activation);
          // The unfused path: the convolution with PyTorch's padding, + shift, then x * sigmoid(x).
          const z = tf.add(plainConv(x, conv), shift);
          const ref = activation ? tf.mul(z, tf.sigmoid(z)) : z;
          assert.deepEqual(fused.shape, ref.shape, `${kind} stride ${stride} ${h}x${w}: shape`);
          assert.ok(relDiff(fused, ref) < 2e-6, `${kind} stride ${stride} ${h}x${w} silu=${activation}: ${relDiff(fused, ref)} (relative)`);
        }
      });
    }
  }
  tf.dispose(cases.map((c) => c.conv.weight));
});

test("evaluation's squeeze-excitation: the native gate = TF.js's ops, and the projection of the gated input = scaling, then convolution and BatchNorm, whether or not the gate is folded into per-sample weights", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
  assert.equal(foldsInputScale(99, 10, true, true), true, "oneDNN on, weights [N, 6, 10] smaller than x [N, 99, 6]: folded");
  assert.equal(foldsInputScale(9, 10, true, true), false);
  assert.equal(foldsInputScale(FOLD_MIN_POSITIONS, 10, true, false), true, "oneDNN's optimizations off, its kernels by name: folded from FOLD_MIN_POSITIONS");
  assert.equal(foldsInputScale(FOLD_MIN_POSITIONS - 1, 10, true, false), false);
  assert.equal(foldsInputScale(1e6, 10, false, false), false, "no oneDNN kernels and its optimizations off: never folded (Eigen's product)");
  const { conv, cin, cout } = convCases(60)[0];
  const p = { w1: randomTensor([cin, 3], 61) as tf.Tensor2D, b1: randomTensor([3], 62) as tf.Tensor1D, w2: randomTensor([3, cin], 63) as tf.Tensor2D, b2: randomTensor([cin], 64) as tf.Tensor1D };
  const bn = {
    gamma: randomTensor([cout], 65), beta: randomTensor([cout], 66), eps: 1e-5, momentum: 0.1,
    runningMean: tf.variable(randomTensor([cout], 67), false), runningVar: tf.variable(tf.add(tf.abs(randomTensor([cout], 68)), 0.2), false),
  };
  // 9x11 = 99 positions, where the gate is folded into the weights when oneDNN is on, and 3x3 = 9 <
  // 10 outputs, where x is scaled first; each both ways, whatever this CPU, and folded both on
  // oneDNN's batched product (where it runs by name) and, with TF_ENABLE_ONEDNN_OPTS=0, on TF's.
  const saved = process.env.TF_ENABLE_ONEDNN_OPTS;
  t.after(() => {
    setFoldInputScale("auto");
    if (saved === undefined) delete process.env.TF_ENABLE_ONEDNN_OPTS;
    else process.env.TF_ENABLE_ONEDNN_OPTS = saved;
  });
  const ways = [["always", saved], ["always", "0"], ["never", saved]] as const;
  for (const [[h, w], [fold, oneDnnOpts]] of [[9, 11], [3, 3]].flatMap((hw) => ways.map((way) => [hw, way] as const))) {
    setFoldInputScale(fold);
    if (oneDnnOpts === undefined) delete process.env.TF_ENABLE_ONEDNN_OPTS;
    else process.env.TF_ENABLE_ONEDNN_OPTS = oneDnnOpts;
    tf.tidy(() => {
      const x = randomTensor([3, h, w, cin], 69) as tf.Tensor4D;
      const gate = squeezeExcitationGate(x, p);
      const a = tf.add(tf.matMul(tf.mean(x, [1, 2]) as tf.Tensor2D, p.w1), p.b1);
      const gateRef = tf.sigmoid(tf.add(tf.matMul(tf.mul(a, tf.sigmoid(a)), p.w2), p.b2));
      assert.ok(relDiff(gate, gateRef) < 2e-6, `gate ${h}x${w}: ${relDiff(gate, gateRef)} (relative)`);
      for (const activation of [false, true]) {
        const y = convBnAct(x, conv, bn, { training: false, updateRunningStats: false }, activation, gateRef as tf.Tensor2D);
        const z = tf.batchNorm4d(plainConv(tf.mul(x, tf.reshape(gateRef, [3, 1, 1, cin])), conv), bn.runningMean as tf.Tensor1D, bn.runningVar as tf.Tensor1D, bn.beta as tf.Tensor1D, bn.gamma as tf.Tensor1D, 1e-5);
        const ref = activation ? tf.mul(z, tf.sigmoid(z)) : z;
        assert.ok(relDiff(y, ref) < 2e-6, `projection ${h}x${w} silu=${activation} fold=${fold} TF_ENABLE_ONEDNN_OPTS=${oneDnnOpts}: ${relDiff(y, ref)} (relative)`);
      }
    });
  }
  tf.dispose([conv.weight, p.w1, p.b1, p.w2, p.b2, bn.gamma, bn.beta, bn.runningMean, bn.runningVar]);
});

test("EvalFolds: BatchNorm folded once per evaluation pass gives the per-call values bit for bit, refolds after an assign(), and dispose() frees it all", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
  const convs: ConvSpec[] = [
    { kind: "pointwise", weight: tf.variable(randomTensor([6, 6], 21, 0.5)), stride: 1 },
    { kind: "depthwise", weight: tf.variable(randomTensor([5, 5, 6, 1], 22, 0.5)), stride: 2 },
    { kind: "full", weight: tf.variable(randomTensor([3, 3, 6, 6], 23, 0.5)), stride: 1 },
  ];
  const bn = {
    gamma: tf.variable(randomTensor([6], 24)), beta: tf.variable(randomTensor([6], 25)), eps: 1e-5, momentum: 0.1,
    runningMean: tf.variable(randomTensor([6], 26), false), runningVar: tf.variable(tf.add(tf.abs(randomTensor([6], 27)), 0.2), false),
  };
  const batches = [randomTensor([2, 9, 11, 6], 28), randomTensor([3, 9, 11, 6], 29)] as tf.Tensor4D[];
  const perCall = { training: false, updateRunningStats: false };
  const live = tf.memory().numTensors;
  const folds = new EvalFolds();
  const pass = (): Float32Array[] => batches.flatMap((x) => convs.map((conv) => {
    const [a, b] = [convBnAct(x, conv, bn, { ...perCall, folds }, true), convBnAct(x, conv, bn, perCall, true)];
    assert.deepEqual(a.dataSync(), b.dataSync(), `${conv.kind}: folded once = folded per call`);
    const values = a.dataSync() as Float32Array;
    tf.dispose([a, b]);
    return values;
  }));
  const first = pass();
  assert.equal(folds.size, 3);
  // Per convolution a folded weight, a shift and the filter view of the weight (a full one's filter is the weight itself).
  assert.equal(tf.memory().numTensors, live + 8, "the folds of each convolution, held across batches");
  // A training step or a checkpoint load assigns the variables: the next pass must not reuse the old folds.
  tf.tidy(() => bn.runningVar.assign(tf.add(bn.runningVar, 0.5)));
  const second = pass();
  second.forEach((v, i) => assert.notDeepEqual(v, first[i], "the assign changed the output"));
  assert.equal(tf.memory().numTensors, live + 8, "the stale folds were freed");
  folds.dispose();
  assert.equal(tf.memory().numTensors, live);
  tf.dispose([...batches, ...convs.map((c) => c.weight), bn.gamma, bn.beta, bn.runningMean, bn.runningVar]);
});

test("a model's evaluation with EvalFolds = without, bit for bit, over several batches", (t) => {
  if (nb === null) return t.skip(`no native backend (${why})`);
  const model = new BinaryClassifier("tiny", makeRng("eval-folds"));
  const batches = [randomTensor([4, 32, 32, 3], 30), randomTensor([2, 32, 32, 3], 31)] as tf.Tensor4D[];
  const live = tf.memory().numTensors;
  const folds = new EvalFolds();
  for (const x of batches) {
    const [a, b] = [model.forward(x, { training: false, folds }), model.forward(x, { training: false })];
    assert.deepEqual(a.dataSync(), b.dataSync());
    tf.dispose([a, b]);
  }
  assert.ok(folds.size > 0, "the model's convolutions were folded through the cache");
  folds.dispose();
  assert.equal(tf.memory().numTensors, live);
  tf.dispose(batches);
  model.dispose();
});
