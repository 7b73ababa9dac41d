// EfficientNet and the binary head: torchvision's structure (keys, shapes, parameter counts
// printed by torchvision 0.28 itself), PyTorch semantics of the ops (padding, BatchNorm running
// statistics), the plain-JS kernels against TF.js's own ops, determinism, and memory hygiene.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "crypto";
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../src/rng";
import {
  efficientNetArchitecture,
  makeDivisible,
  MODEL_SPECS,
  modelSummaryTable,
  summarizeEfficientNet,
  variablePlan,
} from "../src/model/architecture";
import { buildEfficientNet } from "../src/model/efficientnet";
import { BinaryClassifier, positiveRateBias } from "../src/model/head";
import {
  batchNormAct,
  BatchNormState,
  dense,
  dropMask,
  pointwiseConv,
  residualAdd,
  scaleChannels,
  scaleRows,
  setJsKernels,
  spatialMean,
  symmetricConv,
  symmetricDepthwiseConv,
} from "../src/model/ops/layers";
import { squeezeExcitation } from "../src/model/ops/squeeze_excitation";
import type { ModelName } from "../src/config";
import type { RecomputeOutput, RecomputeRun } from "./helpers/recompute_step";
import { runOnBackend } from "./helpers/run_on_backend";

// Printed from torchvision: sum(p.numel() for p in model.parameters()), len(state_dict) without
// num_batches_tracked, and sha256 of "key d0,d1,..." lines in state_dict order. "tiny" is
// EfficientNet(_efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.5)[0], 0.2).
const TORCHVISION: Record<ModelName, { params: number; keys: number; sha256: string }> = {
  tiny: { params: 519_822, keys: 197, sha256: "df64c3da0ebde9c95d556a042563b37d9ea97ca4977f74631b9c1767f37da50d" },
  b0: { params: 5_288_548, keys: 311, sha256: "30b11f328be1f18c8d1090d18c439b834707264ccf80b9e35347c65baf4d8ce0" },
  b1: { params: 7_794_184, keys: 439, sha256: "659185f37b85a55dfd23beaf16865b5addd68558d8456647b06a8debc41e6d8d" },
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const rng = makeRng("model-test", seed);
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  return tf.tensor(v, shape, "float32");
}

function withKernels<T>(mode: "auto" | "off", f: () => T): T {
  setJsKernels(mode);
  try {
    return f();
  } finally {
    setJsKernels("auto");
  }
}

/** Output and gradients wrt every input of sum(f(inputs) * dy), as plain arrays. */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], dySeed: number): { y: Float32Array; grads: Float32Array[] } {
  return tf.tidy(() => {
    const y = f(...inputs);
    const dy = randomTensor(y.shape, dySeed);
    const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), dy)))(inputs);
    return { y: y.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

/** The plain-JS kernel and the TF.js formulation give the same values and gradients. */
function assertKernelsAgree(name: string, f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], tol = 1e-4): void {
  const js = withKernels("auto", () => valueAndGrads(f, inputs, 99));
  const ref = withKernels("off", () => valueAndGrads(f, inputs, 99));
  const scale = Math.max(1, maxAbs(ref.y));
  assert.ok(maxAbsDiff(js.y, ref.y) <= tol * scale, `${name}: outputs differ by ${maxAbsDiff(js.y, ref.y)}`);
  ref.grads.forEach((g, i) => {
    const d = maxAbsDiff(js.grads[i], g);
    assert.ok(d <= tol * Math.max(1, maxAbs(g)), `${name}: gradient ${i} differs by ${d}`);
  });
}

function makeBatchNormState(c: number, seed: number): BatchNormState {
  const rng = makeRng("bn", seed);
  const vec = (f: () => number): tf.Variable => tf.variable(tf.tensor1d(Array.from({ length: c }, f)));
  return {
    gamma: vec(() => 1 + 0.5 * rng.normal()),
    beta: vec(() => 0.5 * rng.normal()),
    runningMean: vec(() => 0.3 * rng.normal()),
    runningVar: vec(() => 1 + rng.next()),
    eps: 1e-5,
    momentum: 0.1,
  };
}

function disposeBatchNormState(bn: BatchNormState): void {
  for (const v of [bn.gamma, bn.beta, bn.runningMean, bn.runningVar]) v.dispose();
}

test("torchvision's channel rounding and depth scaling", () => {
  assert.equal(makeDivisible(32 * 0.25, 8), 8);
  assert.equal(makeDivisible(16 * 0.25, 8), 8); // never below the divisor
  assert.equal(makeDivisible(40 * 0.25, 8), 16); // 8 would be more than 10% below 10
  assert.equal(makeDivisible(80 * 0.25, 8), 24);
  assert.equal(makeDivisible(16 * 6, 8), 96);
  const b1 = efficientNetArchitecture("b1");
  assert.deepEqual(b1.stages.map((s) => s.length), [2, 3, 3, 4, 4, 5, 2]); // ceil(n * 1.1)
  const blocks = b1.stages.flat();
  assert.equal(blocks[0].stochasticDepthProb, 0);
  assert.equal(blocks[22].stochasticDepthProb, (0.2 * 22) / 23); // torchvision: 0.19130434782608696
  assert.deepEqual(efficientNetArchitecture("b0").stages.map((s) => s.length), [1, 2, 2, 3, 3, 4, 1]);
  assert.deepEqual(efficientNetArchitecture("tiny").stages.map((s) => s.length), [1, 1, 1, 2, 2, 2, 1]);
  // BatchNorm of B0/B1 is nn.BatchNorm2d's default (the eps=1e-3 variants are B5-B7 and V2).
  assert.equal(MODEL_SPECS.b1.bnEps, 1e-5);
  assert.equal(MODEL_SPECS.b1.bnMomentum, 0.1);
});

test("state_dict keys, PyTorch shapes and parameter counts equal torchvision's", () => {
  for (const name of ["tiny", "b0", "b1"] as ModelName[]) {
    const plan = variablePlan(efficientNetArchitecture(name));
    const lines = plan.map((p) => `${p.key} ${p.torchShape.join(",")}`).join("\n");
    assert.equal(plan.length, TORCHVISION[name].keys, name);
    assert.equal(createHash("sha256").update(lines).digest("hex"), TORCHVISION[name].sha256, `${name}: keys or shapes differ from torchvision`);
    const params = plan.filter((p) => p.trainable).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    assert.equal(params, TORCHVISION[name].params, name);
  }
  const b1 = new Map(variablePlan(efficientNetArchitecture("b1")).map((p) => [p.key, p]));
  const expect = (key: string, torchShape: number[], shape: number[], trainable = true): void => {
    const p = b1.get(key);
    assert.ok(p, key);
    assert.deepEqual(p.torchShape, torchShape, key);
    assert.deepEqual(p.shape, shape, key);
    assert.equal(p.trainable, trainable, key);
  };
  expect("features.0.0.weight", [32, 3, 3, 3], [3, 3, 3, 32]);
  expect("features.0.1.running_var", [32], [32], false);
  expect("features.1.0.block.1.fc1.weight", [8, 32, 1, 1], [32, 8]); // expand ratio 1: no expand conv
  expect("features.3.0.block.1.0.weight", [144, 1, 5, 5], [5, 5, 144, 1]); // depthwise
  expect("features.3.1.block.1.0.weight", [240, 1, 5, 5], [5, 5, 240, 1]);
  expect("features.3.1.block.2.fc1.weight", [10, 240, 1, 1], [240, 10]);
  expect("features.3.1.block.2.fc2.bias", [240], [240]);
  expect("features.7.0.block.3.0.weight", [320, 1152, 1, 1], [1152, 320]);
  expect("features.7.1.block.3.0.weight", [320, 1920, 1, 1], [1920, 320]);
  expect("features.8.0.weight", [1280, 320, 1, 1], [320, 1280]);
  expect("classifier.1.weight", [1000, 1280], [1280, 1000]);
  expect("classifier.1.bias", [1000], [1000]);
});

test("per-stage summary adds up to the parameter count", () => {
  const rows = summarizeEfficientNet("b1", 32);
  assert.equal(rows.reduce((a, r) => a + r.params, 0), 7_794_184);
  assert.deepEqual(rows.map((r) => r.stage), ["features.0", "features.1", "features.2", "features.3", "features.4", "features.5", "features.6", "features.7", "features.8", "classifier"]);
  assert.deepEqual(rows.map((r) => r.outputSize), [16, 16, 8, 4, 2, 2, 1, 1, 1, 1]);
  assert.equal(rows[9].params, 1280 * 1000 + 1000);
});

test("the walkthrough's model table: stages, the head row, 7,795,185 parameters for B1", () => {
  const { table, parameters } = modelSummaryTable("b1", 240);
  assert.equal(parameters, 7_795_185); // torchvision's B1 + nn.Linear(1000, 1)
  assert.deepEqual(table.columns, ["stage", "layers", "blocks", "in", "out", "output side", "parameters"]);
  assert.equal(table.values.length, 11);
  // Stem: 3x3x3x32 conv weights + BatchNorm gamma and beta.
  assert.deepEqual(table.values[0], ["features.0", "Conv3x3 s2 + BN + SiLU", 1, 3, 32, 120, 3 * 3 * 3 * 32 + 2 * 32]);
  assert.deepEqual(table.values[3], ["features.3", "MBConv6 k5x5 s2 + SE", 3, 24, 40, 30, 77_930]);
  // Printed by torchvision 0.28: sum(p.numel() ...) over efficientnet_b1().features[0..8], then .classifier.
  const torchvision = [928, 2060, 27424, 77930, 345830, 751720, 2614300, 2280832, 412160, 1281000];
  assert.deepEqual(table.values.slice(0, 10).map((row) => row[6]), torchvision);
  assert.deepEqual(table.values[9], ["classifier", "AvgPool + Dropout(0.2) + Linear", 1, 1280, 1000, 1, 1280 * 1000 + 1000]);
  assert.deepEqual(table.values[10], ["head", "Linear(1000, 1), bias = the arm's init", 1, 1000, 1, 1, 1001]);
  assert.equal(table.values.reduce((a, row) => a + (row[6] as number), 0), parameters);
  assert.equal(modelSummaryTable("tiny", 32).parameters, 519_822 + 1001);
});

test("B1 with the binary head: parameter count, init distributions, variables, eval output", () => {
  const model = new BinaryClassifier("b1", makeRng("b1-init"));
  try {
    assert.equal(model.parameterCount(), 7_795_185);
    assert.equal(model.backbone.parameterCount(), 7_794_184);
    assert.equal(model.trainableVariables().reduce((a, v) => a + v.size, 0), 7_795_185);
    const named = model.namedVariables();
    assert.equal(named.size, 439 + 2);
    assert.deepEqual(model.torchShapeOf("head.weight"), [1, 1000]);
    assert.deepEqual(model.torchShapeOf("features.3.1.block.1.0.weight"), [240, 1, 5, 5]);
    assert.throws(() => model.torchShapeOf("features.99.weight"), /not a key of efficientnet b1/);

    const std = (key: string): number => {
      const v = named.get(key)?.dataSync() as Float32Array;
      let s = 0;
      for (const x of v) s += x * x;
      return Math.sqrt(s / v.length);
    };
    // kaiming_normal_(mode="fan_out"): std = sqrt(2 / (out_channels * kh * kw)).
    assert.ok(Math.abs(std("features.8.0.weight") / Math.sqrt(2 / 1280) - 1) < 0.01);
    assert.ok(Math.abs(std("features.6.0.block.1.0.weight") / Math.sqrt(2 / (672 * 25)) - 1) < 0.05);
    // Linear(1280, 1000): uniform(+-1/sqrt(1000)), std = bound / sqrt(3); head: uniform(+-1/sqrt(1000)).
    assert.ok(Math.abs(std("classifier.1.weight") / (1 / Math.sqrt(1000) / Math.sqrt(3)) - 1) < 0.01);
    assert.ok(maxAbs(named.get("head.weight")?.dataSync() as Float32Array) <= 1 / Math.sqrt(1000));
    assert.ok(Math.abs(model.outputBias()) <= 1 / Math.sqrt(1000));
    assert.equal(maxAbs(named.get("classifier.1.bias")?.dataSync() as Float32Array), 0);
    assert.deepEqual(Array.from(named.get("features.5.2.block.1.1.weight")?.dataSync() ?? []).slice(0, 3), [1, 1, 1]);
    assert.deepEqual(Array.from(named.get("features.5.2.block.1.1.running_var")?.dataSync() ?? []).slice(0, 3), [1, 1, 1]);

    const x = randomTensor([2, 32, 32, 3], 1) as tf.Tensor4D;
    const y = model.forward(x, { training: false });
    assert.deepEqual(y.shape, [2]);
    assert.ok(Array.from(y.dataSync()).every(Number.isFinite));
    tf.dispose([x, y]);
  } finally {
    model.dispose();
  }
});

test("padding is PyTorch's symmetric (k-1)/2, not TF's 'same' (both kernel modes)", () => {
  const x = tf.tensor4d(Array.from({ length: 16 }, (_, i) => i + 1), [1, 4, 4, 1]);
  const w = tf.tensor4d(Array.from({ length: 9 }, (_, i) => i + 1), [3, 3, 1, 1]);
  for (const mode of ["auto", "off"] as const) {
    withKernels(mode, () => {
      // Output (0, 0) is centred on input (0, 0): 1*5 + 2*6 + 5*8 + 6*9 = 111; TF 'same' centres it
      // on input (1, 1) instead (348). Output (1, 1) is centred on input (2, 2).
      const expected = [111, 217, 363, 573];
      tf.tidy(() => {
        assert.deepEqual(Array.from(symmetricConv(x, w, 2).dataSync()), expected, mode);
        assert.deepEqual(Array.from(symmetricDepthwiseConv(x, w, 2).dataSync()), expected, mode);
      });
    });
  }
  tf.dispose([x, w]);
});

test("BatchNorm by hand: batch statistics, PyTorch running-stat update, eval with running stats", () => {
  // One channel, values 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3.
  for (const mode of ["auto", "off"] as const) {
    withKernels(mode, () => {
      const bn: BatchNormState = {
        gamma: tf.variable(tf.tensor1d([2])),
        beta: tf.variable(tf.tensor1d([0.5])),
        runningMean: tf.variable(tf.tensor1d([0])),
        runningVar: tf.variable(tf.tensor1d([1])),
        eps: 1e-5,
        momentum: 0.1,
      };
      const x = tf.tensor4d([1, 2, 3, 4], [2, 1, 2, 1]);
      const y = tf.tidy(() => batchNormAct(x, bn, { training: true, updateRunningStats: true }, false));
      const sd = Math.sqrt(1.25 + 1e-5);
      const expected = [1, 2, 3, 4].map((v) => (2 * (v - 2.5)) / sd + 0.5);
      assert.ok(maxAbsDiff(y.dataSync(), expected) < 1e-5, mode);
      assert.ok(Math.abs(bn.runningMean.dataSync()[0] - 0.25) < 1e-6, mode); // 0.9 * 0 + 0.1 * 2.5
      assert.ok(Math.abs(bn.runningVar.dataSync()[0] - (0.9 + 0.1 * (5 / 3))) < 1e-6, mode);
      // Train-mode evaluation (the reference's quirk) leaves the buffers alone.
      tf.tidy(() => {
        batchNormAct(x, bn, { training: true, updateRunningStats: false }, true);
      });
      assert.ok(Math.abs(bn.runningMean.dataSync()[0] - 0.25) < 1e-6, mode);
      // Eval: running statistics, SiLU on top.
      const e = tf.tidy(() => batchNormAct(x, bn, { training: false, updateRunningStats: false }, true));
      const rv = 0.9 + 0.1 * (5 / 3);
      const evalExpected = [1, 2, 3, 4].map((v) => {
        const z = (2 * (v - 0.25)) / Math.sqrt(rv + 1e-5) + 0.5;
        return z / (1 + Math.exp(-z));
      });
      assert.ok(maxAbsDiff(e.dataSync(), evalExpected) < 1e-5, mode);
      assert.throws(() => batchNormAct(tf.zeros([1, 1, 1, 1]) as tf.Tensor4D, bn, { training: true, updateRunningStats: false }, false), /more than 1 value per channel/);
      tf.dispose([x, y, e]);
      disposeBatchNormState(bn);
    });
  }
});

test("plain-JS kernels equal the TF.js ops, values and gradients", () => {
  const x = randomTensor([3, 7, 6, 5], 1) as tf.Tensor4D;
  assertKernelsAgree("dense", (a, b) => dense(a as tf.Tensor2D, b as tf.Tensor2D), [randomTensor([13, 9], 2), randomTensor([9, 6], 3)]);
  assertKernelsAgree("pointwise", (a, b) => pointwiseConv(a as tf.Tensor4D, b as tf.Tensor2D), [x, randomTensor([5, 11], 4)]);
  for (const stride of [1, 2]) {
    assertKernelsAgree(`conv3x3 s${stride}`, (a, b) => symmetricConv(a as tf.Tensor4D, b as tf.Tensor4D, stride), [x, randomTensor([3, 3, 5, 4], 5)]);
    for (const k of [3, 5]) {
      assertKernelsAgree(`depthwise k${k} s${stride}`, (a, b) => symmetricDepthwiseConv(a as tf.Tensor4D, b as tf.Tensor4D, stride), [x, randomTensor([k, k, 5, 1], 6)]);
    }
  }
  assertKernelsAgree("spatialMean", (a) => spatialMean(a as tf.Tensor4D), [x]);
  assertKernelsAgree("scaleChannels", (a, s) => scaleChannels(a as tf.Tensor4D, s as tf.Tensor2D), [x, randomTensor([3, 5], 7)]);
  assertKernelsAgree("scaleRows", (a) => scaleRows(a, new Float32Array([0, 1.25, 2])), [x]);
  for (const mask of [new Float32Array([0, 1.25, 2]), null]) {
    assertKernelsAgree(`residualAdd mask=${mask !== null}`, (a, b) => residualAdd(a as tf.Tensor4D, b as tf.Tensor4D, mask), [x, randomTensor([3, 7, 6, 5], 8)]);
  }
  assertKernelsAgree("squeezeExcitation", (a, w1, b1, w2, b2) => squeezeExcitation(a as tf.Tensor4D,
    { w1: w1 as tf.Tensor2D, b1: b1 as tf.Tensor1D, w2: w2 as tf.Tensor2D, b2: b2 as tf.Tensor1D }),
  [x, randomTensor([5, 2], 9), randomTensor([2], 10), randomTensor([2, 5], 11), randomTensor([5], 12)]);
  for (const training of [true, false]) {
    for (const activation of [true, false]) {
      const bn = makeBatchNormState(5, 8);
      assertKernelsAgree(
        `batchNorm training=${training} silu=${activation}`,
        (a, g, b) => batchNormAct(a as tf.Tensor4D, { ...bn, gamma: g as tf.Variable, beta: b as tf.Variable }, { training, updateRunningStats: false }, activation),
        [x, bn.gamma, bn.beta],
      );
      disposeBatchNormState(bn);
    }
  }
  x.dispose();
});

test("tiny model: the plain-JS kernels and TF.js ops give the same logits, gradients and running stats", () => {
  const model = buildEfficientNet("tiny", makeRng("kernels"));
  const x = randomTensor([4, 32, 32, 3], 2) as tf.Tensor4D;
  const initial = model.getWeights();
  const run = (mode: "auto" | "off"): { logits: Float32Array; grads: Map<string, Float32Array>; weights: Map<string, Float32Array> } =>
    withKernels(mode, () => {
      model.setWeights(initial);
      const rng = makeRng("masks");
      let logits = new Float32Array(0);
      const { value, grads } = tf.variableGrads(() => {
        const y = model.forward(x, { training: true, updateBatchNorm: true, rng });
        logits = Float32Array.from(y.dataSync());
        return tf.mean(tf.square(y)) as tf.Scalar;
      }, model.trainableVariables());
      const out = new Map<string, Float32Array>();
      for (const [k, v] of model.namedVariables()) {
        const g = grads[v.name];
        if (g) out.set(k, Float32Array.from(g.dataSync()));
      }
      tf.dispose([value, ...Object.values(grads)]);
      return { logits, grads: out, weights: model.getWeights() };
    });
  try {
    const js = run("auto");
    const ref = run("off");
    assert.ok(maxAbsDiff(js.logits, ref.logits) < 1e-4 * Math.max(1, maxAbs(ref.logits)));
    assert.equal(js.grads.size, model.trainableVariables().length);
    for (const [k, g] of ref.grads) {
      const d = maxAbsDiff(js.grads.get(k) as Float32Array, g);
      assert.ok(d <= 2e-3 * Math.max(1e-3, maxAbs(g)), `${k}: gradient differs by ${d} (max ${maxAbs(g)})`);
    }
    for (const [k, w] of ref.weights) {
      assert.ok(maxAbsDiff(js.weights.get(k) as Float32Array, w) < 1e-4 * Math.max(1, maxAbs(w)), `${k}: running stats differ`);
    }
  } finally {
    x.dispose();
    model.dispose();
  }
});

test("running stats of the stem BatchNorm follow PyTorch's formula", () => {
  const model = buildEfficientNet("tiny", makeRng("stem-bn"));
  const x = randomTensor([4, 32, 32, 3], 3) as tf.Tensor4D;
  try {
    const named = model.namedVariables();
    // The stem conv output, computed independently of the model code.
    const conv = tf.conv2d(x, named.get("features.0.0.weight") as tf.Tensor4D, 2, 1);
    const [n, h, w, c] = conv.shape;
    const v = conv.dataSync();
    const count = n * h * w;
    const mean = new Float64Array(c);
    const sq = new Float64Array(c);
    for (let i = 0; i < v.length; i++) mean[i % c] += v[i] / count;
    for (let i = 0; i < v.length; i++) sq[i % c] += (v[i] - mean[i % c]) ** 2;
    conv.dispose();
    tf.tidy(() => {
      model.forward(x, { training: true, updateBatchNorm: true, rng: makeRng(1) });
    });
    const rm = named.get("features.0.1.running_mean")?.dataSync() as Float32Array;
    const rv = named.get("features.0.1.running_var")?.dataSync() as Float32Array;
    for (let ch = 0; ch < c; ch++) {
      assert.ok(Math.abs(rm[ch] - 0.1 * mean[ch]) < 1e-5 * Math.max(1, Math.abs(mean[ch])), `running_mean[${ch}]`);
      const unbiased = sq[ch] / (count - 1);
      assert.ok(Math.abs(rv[ch] - (0.9 + 0.1 * unbiased)) < 1e-5 * Math.max(1, unbiased), `running_var[${ch}]`);
    }
  } finally {
    x.dispose();
    model.dispose();
  }
});

test("eval is deterministic; train mode replays with the same Rng keys and differs with others", () => {
  const model = new BinaryClassifier("tiny", makeRng("replay"));
  const x = randomTensor([6, 32, 32, 3], 4) as tf.Tensor4D;
  const forward = (opts: Parameters<BinaryClassifier["forward"]>[1]): Float32Array => tf.tidy(() => Float32Array.from(model.forward(x, opts).dataSync()));
  try {
    const before = model.getWeights();
    const e1 = forward({ training: false });
    assert.deepEqual(forward({ training: false }), e1);
    assert.equal(e1.length, 6);
    const t1 = forward({ training: true, rng: makeRng("masks", 1) });
    assert.deepEqual(forward({ training: true, rng: makeRng("masks", 1) }), t1);
    assert.ok(maxAbsDiff(forward({ training: true, rng: makeRng("masks", 2) }), t1) > 1e-6, "different masks, same logits");
    // Neither eval nor train-mode evaluation touched the running statistics.
    for (const [k, v] of model.getWeights()) assert.deepEqual(v, before.get(k), k);
    assert.throws(() => model.forward(x, { training: true }), /needs opts.rng/);
    assert.throws(() => model.forward(x, { training: false, updateBatchNorm: true }), /updateBatchNorm needs training/);
    assert.throws(() => model.forward(tf.zeros([1, 8, 8, 1]) as tf.Tensor4D, { training: false }), /NHWC float32 images \[N, H, W, 3\]/);
  } finally {
    x.dispose();
    model.dispose();
  }
});

test("dropout masks: 0 or 1/keep, deterministic, about the right rate", () => {
  const a = dropMask(20000, 0.2, makeRng("drop"));
  assert.deepEqual(a, dropMask(20000, 0.2, makeRng("drop")));
  assert.ok(a.every((v) => v === 0 || v === Math.fround(1 / 0.8)));
  const dropped = a.filter((v) => v === 0).length / a.length;
  assert.ok(Math.abs(dropped - 0.2) < 0.015, `dropped ${dropped}`);
  assert.throws(() => dropMask(3, 1, makeRng(0)), /drop probability/);
});

test("head bias: positive rate gives sigmoid(bias) = p; both arms share every other weight", () => {
  assert.ok(Math.abs(positiveRateBias(0.1) - Math.log(0.1 / 0.9)) < 1e-12);
  for (const bad of [0, 1, -0.1, Number.NaN]) assert.throws(() => positiveRateBias(bad), /positive rate must be in \(0, 1\)/);
  const vanilla = new BinaryClassifier("tiny", makeRng(7, "init"));
  const positive = new BinaryClassifier("tiny", makeRng(7, "init"));
  try {
    const defaultBias = vanilla.outputBias();
    vanilla.initHeadBias("vanilla", 0.1);
    assert.equal(vanilla.outputBias(), defaultBias);
    positive.initHeadBias("positive_rate", 0.1);
    assert.ok(Math.abs(1 / (1 + Math.exp(-positive.outputBias())) - 0.1) < 1e-6);
    const wv = vanilla.getWeights();
    const wp = positive.getWeights();
    assert.equal(wv.size, 197 + 2);
    for (const [k, v] of wv) {
      if (k === "head.bias") assert.notDeepEqual(v, wp.get(k));
      else assert.deepEqual(v, wp.get(k), k);
    }
    assert.throws(() => positive.initHeadBias("positive_rate", 1), /positive rate/);
  } finally {
    vanilla.dispose();
    positive.dispose();
  }
});

test("head, third arm: the positive-rate bias with zeroed head weights; every logit is the bias in train mode too; the rest as the other arms'", () => {
  const positive = new BinaryClassifier("tiny", makeRng(7, "init"));
  const zeroHead = new BinaryClassifier("tiny", makeRng(7, "init"));
  const x = randomTensor([6, 32, 32, 3], 3) as tf.Tensor4D;
  try {
    positive.initHeadBias("positive_rate", 0.02);
    zeroHead.initHeadBias("positive_rate_zero_head", 0.02);
    assert.equal(zeroHead.outputBias(), positive.outputBias());
    const wp = positive.getWeights();
    for (const [k, v] of zeroHead.getWeights()) {
      if (k === "head.weight") assert.ok(v.every((w) => w === 0) && wp.get(k)?.some((w) => w !== 0), k);
      else assert.deepEqual(v, wp.get(k), k);
    }
    const bias = Math.fround(Math.log(0.02 / 0.98));
    for (const training of [true, false]) {
      const logits = zeroHead.forward(x, { training, updateBatchNorm: false, rng: makeRng(1, "step") });
      assert.deepEqual([...logits.dataSync()], new Array(6).fill(bias), `training ${training}: every logit is the bias`);
      logits.dispose();
    }
    // With the drawn head weights the train-mode logits spread around the bias.
    const spread = positive.forward(x, { training: true, updateBatchNorm: false, rng: makeRng(1, "step") });
    assert.ok(new Set(spread.dataSync()).size > 1);
    spread.dispose();
  } finally {
    x.dispose();
    positive.dispose();
    zeroHead.dispose();
  }
});

test("getWeights/setWeights round-trip and reject mismatched checkpoints", () => {
  const a = new BinaryClassifier("tiny", makeRng("a"));
  const b = new BinaryClassifier("tiny", makeRng("b"));
  const x = randomTensor([2, 32, 32, 3], 5) as tf.Tensor4D;
  try {
    const ya = tf.tidy(() => Array.from(a.forward(x, { training: false }).dataSync()));
    b.setWeights(a.getWeights());
    assert.deepEqual(tf.tidy(() => Array.from(b.forward(x, { training: false }).dataSync())), ya);
    const missing = a.getWeights();
    missing.delete("features.0.1.running_mean");
    assert.throws(() => b.setWeights(missing), /missing \[features\.0\.1\.running_mean\]/);
    const wrongSize = a.getWeights();
    wrongSize.set("head.weight", new Float32Array(3));
    assert.throws(() => b.setWeights(wrongSize), /"head\.weight" has 3 values, expected 1000/);
  } finally {
    x.dispose();
    a.dispose();
    b.dispose();
  }
});

test("a training step leaves no tensors behind (both kernel modes)", () => {
  const model = new BinaryClassifier("tiny", makeRng("memory"));
  const x = randomTensor([4, 32, 32, 3], 6) as tf.Tensor4D;
  const y = tf.tensor1d([0, 1, 0, 0]);
  try {
    for (const mode of ["auto", "off"] as const) {
      withKernels(mode, () => {
        const rng = makeRng("memory-masks");
        const before = tf.memory().numTensors;
        for (let step = 0; step < 2; step++) {
          const { value, grads } = tf.variableGrads(
            () => tf.losses.sigmoidCrossEntropy(y, model.forward(x, { training: true, updateBatchNorm: true, rng })) as tf.Scalar,
            model.trainableVariables(),
          );
          tf.dispose([value, ...Object.values(grads)]);
        }
        tf.tidy(() => {
          model.forward(x, { training: false });
        });
        assert.equal(tf.memory().numTensors, before, mode);
      });
    }
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
  const live = tf.memory().numTensors;
  const other = new BinaryClassifier("tiny", makeRng("memory"));
  other.dispose();
  assert.equal(tf.memory().numTensors, live, "dispose() frees every variable");
});

test("block recompute: every mode gives bit-identical gradients, loss and running statistics (pure JS and native)", async (t) => {
  // One training-mode forward + backward of tiny + head at 32x32, batch 4, per mode, each from the
  // same weights and masks. "auto:10000" lowers the threshold so that some blocks are recomputed
  // and others not; plain "auto" recomputes nothing at this size. The recompute replays the same
  // kernels on the same inputs, so equality is exact: the digests of the float32 bytes are compared.
  const modes = ["never", "always", "auto:10000", "auto"];
  for (const backend of ["js", "native"]) {
    await t.test(backend, (st) => {
      const out = runOnBackend<RecomputeOutput>("recompute_step.ts", backend, modes);
      if (typeof out === "string") {
        if (backend === "native") {
          st.skip(`no native backend here (${out.slice(0, 160)}); \`make native\` builds one`);
          return;
        }
        assert.fail(out);
      }
      assert.equal(out.backend, backend === "js" ? "js" : "native-cpu");
      const never = out.runs.never;
      // tiny has 135 parameters tensors and 31 BatchNorms (62 running statistics); the head adds 2.
      assert.equal(Object.keys(never.grads).length, 137);
      assert.equal(Object.keys(never.running).length, 62);
      for (const mode of modes) {
        const run: RecomputeRun = out.runs[mode];
        assert.ok(Number.isFinite(run.loss) && run.loss > 0, `${mode}: loss ${run.loss}`);
        assert.equal(run.loss, never.loss, `${mode}: loss`);
        for (const [key, g] of Object.entries(never.grads)) {
          assert.ok(run.gradMax[key] > 0, `${mode}: ${key} has a zero gradient`);
          assert.equal(run.grads[key], g, `${mode}: gradient of ${key} differs from "never"`);
        }
        assert.equal(run.runningMoved, 62, `${mode}: every running statistic moves in the step`);
        for (const [key, r] of Object.entries(never.running)) assert.equal(run.running[key], r, `${mode}: ${key} differs from "never"`);
      }
      // The modes did what they say: a recomputed block keeps only its input for the backward pass.
      const kept = (mode: string): number => out.runs[mode].kept;
      assert.ok(kept("always") < kept("never") / 4, `always keeps ${kept("always")} tensors, never ${kept("never")}`);
      assert.equal(kept("auto"), kept("never"), "auto recomputes nothing at 32x32, batch 4");
      if (backend === "js") {
        assert.equal(kept("auto:10000"), kept("never"), "auto never recomputes on the pure-JS backend");
      } else {
        assert.ok(kept("always") < kept("auto:10000") && kept("auto:10000") < kept("never"), `auto:10000 keeps ${kept("auto:10000")}`);
      }
    });
  }
});
