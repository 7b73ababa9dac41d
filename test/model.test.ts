// EfficientNet's ops and training behaviour: PyTorch semantics of the ops (padding, BatchNorm running
// statistics), the plain-JS kernels against TF.js's own ops, determinism, dropout masks, memory
// hygiene and block recompute. torchvision's structure (keys, shapes, parameter counts) and the
// head's bias arms are in test/model_structure.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../src/rng";
import { buildEfficientNet } from "../src/model/efficientnet";
import { BinaryClassifier } from "../src/model/head";
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
import type { RecomputeOutput, RecomputeRun } from "./helpers/recompute_step";
import { runOnBackend } from "./helpers/run_on_backend";
import { maxAbs, maxAbsDiff, seededTensor } from "./helpers/tensors";

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
    const dy = seededTensor("model-test", y.shape, dySeed);
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
  const x = seededTensor("model-test", [3, 7, 6, 5], 1) as tf.Tensor4D;
  assertKernelsAgree("dense", (a, b) => dense(a as tf.Tensor2D, b as tf.Tensor2D), [seededTensor("model-test", [13, 9], 2), seededTensor("model-test", [9, 6], 3)]);
  assertKernelsAgree("pointwise", (a, b) => pointwiseConv(a as tf.Tensor4D, b as tf.Tensor2D), [x, seededTensor("model-test", [5, 11], 4)]);
  for (const stride of [1, 2]) {
    assertKernelsAgree(`conv3x3 s${stride}`, (a, b) => symmetricConv(a as tf.Tensor4D, b as tf.Tensor4D, stride), [x, seededTensor("model-test", [3, 3, 5, 4], 5)]);
    for (const k of [3, 5]) {
      assertKernelsAgree(`depthwise k${k} s${stride}`, (a, b) => symmetricDepthwiseConv(a as tf.Tensor4D, b as tf.Tensor4D, stride), [x, seededTensor("model-test", [k, k, 5, 1], 6)]);
    }
  }
  assertKernelsAgree("spatialMean", (a) => spatialMean(a as tf.Tensor4D), [x]);
  assertKernelsAgree("scaleChannels", (a, s) => scaleChannels(a as tf.Tensor4D, s as tf.Tensor2D), [x, seededTensor("model-test", [3, 5], 7)]);
  assertKernelsAgree("scaleRows", (a) => scaleRows(a, new Float32Array([0, 1.25, 2])), [x]);
  for (const mask of [new Float32Array([0, 1.25, 2]), null]) {
    assertKernelsAgree(`residualAdd mask=${mask !== null}`, (a, b) => residualAdd(a as tf.Tensor4D, b as tf.Tensor4D, mask), [x, seededTensor("model-test", [3, 7, 6, 5], 8)]);
  }
  assertKernelsAgree("squeezeExcitation", (a, w1, b1, w2, b2) => squeezeExcitation(a as tf.Tensor4D,
    { w1: w1 as tf.Tensor2D, b1: b1 as tf.Tensor1D, w2: w2 as tf.Tensor2D, b2: b2 as tf.Tensor1D }),
  [x, seededTensor("model-test", [5, 2], 9), seededTensor("model-test", [2], 10), seededTensor("model-test", [2, 5], 11), seededTensor("model-test", [5], 12)]);
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
  const x = seededTensor("model-test", [4, 32, 32, 3], 2) as tf.Tensor4D;
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
  const x = seededTensor("model-test", [4, 32, 32, 3], 3) as tf.Tensor4D;
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
  const x = seededTensor("model-test", [6, 32, 32, 3], 4) as tf.Tensor4D;
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

test("a training step leaves no tensors behind (both kernel modes)", () => {
  const model = new BinaryClassifier("tiny", makeRng("memory"));
  const x = seededTensor("model-test", [4, 32, 32, 3], 6) as tf.Tensor4D;
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
