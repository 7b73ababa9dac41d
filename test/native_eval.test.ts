// Evaluation on the native backend's ops (src/model/ops/native_eval.ts, native_batchnorm.ts):
// BatchNorm (+ SiLU) with the running statistics against tf.batchNorm4d and float64; BatchNorm folded
// into each kind of convolution against convolution then BatchNorm; oneDNN's fused convolution
// against the Eigen ops it replaces; squeeze-excitation's gate and the gated projection; BatchNorm
// folded once per evaluation pass (EvalFolds) against once per call, and a whole model with and
// without it. Skipped where no native backend is built (`make native`); the training ops are in
// test/native_ops.test.ts.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { NativeKernelBackend } from "../src/model/ops/native_backend";
import { nativeInferenceBatchNormAct } from "../src/model/ops/native_batchnorm";
import { EvalFolds, FOLD_MIN_POSITIONS, foldsInputScale, FUSED_CONV_MIN_POSITIONS, fusedFilter, fusesOnCpu, nativeFusedConv, oneDnnKernels, setFoldInputScale } from "../src/model/ops/native_eval";
import { squeezeExcitationGate } from "../src/model/ops/squeeze_excitation";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";
import { convBnAct, ConvSpec, pointwiseConv, symmetricConv, symmetricDepthwiseConv } from "../src/model/ops/layers";
import { relDiff, seededTensor } from "./helpers/tensors";
import { loadNativeForTests } from "./helpers/native_backend";

let nb: NativeKernelBackend | null = null;
let why = "";

before(async () => {
  ({ nb, why } = await loadNativeForTests());
});

// The same seeded inputs as before these tests moved out of native_ops.test.ts.
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

test("evaluation BatchNorm + SiLU (x * alpha + shift, PyTorch's form) = tf.batchNorm4d with the running statistics, and float64", (t) => {
  if (nb === null) return t.skip(why);
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
  if (nb === null) return t.skip(why);
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
  if (nb === null) return t.skip(why);
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
  if (nb === null) return t.skip(why);
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
  if (nb === null) return t.skip(why);
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
  if (nb === null) return t.skip(why);
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
