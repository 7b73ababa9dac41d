// The training loop on a stub model small enough to check by hand: epoch 0 comes before any step,
// SGD momentum follows PyTorch's formula, a non-finite loss stops the run with a readable error,
// and the runner records that error in the results store.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { trainLoop, TrainingDiverged, TrainableModel, BatchSource, EpochMetrics, evaluate } from "../src/train/loop";
import { OptimizerState, OptimizerStateError } from "../src/train/optimizer";
import { epochOrder } from "../src/data/batches";
import { BinaryClassifier } from "../src/model/head";
import { makeRng } from "../src/rng";

/** logit = w * mean(x) + b, one scalar weight and bias. */
function stubModel(w0: number, b0: number): TrainableModel & { w: tf.Variable; b: tf.Variable } {
  const w = tf.variable(tf.scalar(w0));
  const b = tf.variable(tf.scalar(b0));
  return {
    w, b,
    forward: (x) => tf.tidy(() => tf.add(tf.mul(tf.mean(x, [1, 2, 3]), w), b) as tf.Tensor1D),
    trainableVariables: () => [w, b],
    outputBias: () => b.dataSync()[0],
  };
}

/** Each image is constant: value v[i] everywhere; labels y[i]. */
function source(values: number[], labels: number[]): BatchSource {
  return {
    size: values.length,
    labels: Float32Array.from(labels),
    batch: (idx) => {
      const ids = Array.from(idx);
      return {
        x: tf.tidy(() => tf.mul(tf.ones([ids.length, 2, 2, 3]), tf.tensor(ids.map((i) => values[i]), [ids.length, 1, 1, 1])) as tf.Tensor4D),
        y: tf.tensor1d(ids.map((i) => labels[i])),
      };
    },
  };
}

const settings = { epochs: 2, lr: 0.5, momentum: 0.9, trainBatch: 4, testBatch: 4, evalMode: "eval" as const, seed: 3 };

test("epoch 0 is evaluated before any step; momentum follows PyTorch's buf = m*buf + g, p -= lr*buf", async () => {
  // One batch holding all 4 images, so the order of images does not change the gradient.
  const values = [1, -1, 2, 0];
  const labels = [1, 0, 1, 0];
  const model = stubModel(0, 0);
  const records: EpochMetrics[] = [];
  const steps: number[][] = [];
  await trainLoop(model, source(values, labels), source(values, labels), settings, {
    onEpoch: (m, s) => {
      records.push(m);
      if (s) steps.push(s);
    },
  });
  assert.deepEqual(records.map((r) => r.epoch), [0, 1, 2]);
  // At w = b = 0 every probability is 0.5: loss log 2, no ranking information.
  assert.ok(Math.abs(records[0].loss - Math.LN2) < 1e-12);
  assert.equal(records[0].roc_auc, 0.5);
  assert.equal(records[0].train_loss, null);
  // Hand computation of two steps: grad_w = mean((s - y) * v), grad_b = mean(s - y), s = sigmoid(w v + b).
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  let w = 0, b = 0, bw = 0, bb = 0;
  for (let step = 0; step < 2; step++) {
    const r = values.map((v, i) => sig(w * v + b) - labels[i]);
    const gw = r.reduce((s, ri, i) => s + ri * values[i], 0) / 4;
    const gb = r.reduce((s, ri) => s + ri, 0) / 4;
    bw = 0.9 * bw + gw;
    bb = 0.9 * bb + gb;
    w -= 0.5 * bw;
    b -= 0.5 * bb;
  }
  assert.ok(Math.abs(model.w.dataSync()[0] - w) < 1e-6, `w ${model.w.dataSync()[0]} vs ${w}`);
  assert.ok(Math.abs(model.b.dataSync()[0] - b) < 1e-6, `b ${model.b.dataSync()[0]} vs ${b}`);
  assert.equal(records[2].output_bias_value, model.b.dataSync()[0]);
  assert.equal(steps.length, 1, "per-step losses are reported for the first epoch only");
  assert.ok(Math.abs(steps[0][0] - Math.LN2) < 1e-6, "the first step's loss is the loss at init");
  tf.dispose([model.w, model.b]);
});

test("a non-finite loss stops the run with the epoch and step in a readable error", async () => {
  const values = [1, -1, Number.NaN, 0, 1, 2, 3, 4];
  const labels = [1, 0, 1, 0, 0, 0, 1, 0];
  const model = stubModel(0.1, 0);
  const epochs: number[] = [];
  await assert.rejects(
    trainLoop(model, source(values, labels), source([1, -1, 2, 0], [1, 0, 1, 0]), { ...settings, trainBatch: 2 }, { onEpoch: (m) => { epochs.push(m.epoch); } }),
    (e: unknown) => e instanceof TrainingDiverged && e.epoch === 1 && /loss is NaN at epoch 1, step \d/.test(e.message),
  );
  assert.deepEqual(epochs, [0], "epoch 0 was recorded before the failure");
  tf.dispose([model.w, model.b]);
});

test("evaluation measures calibration and logit spread; epoch 0 measures the first batch as the first step sees it", async () => {
  // Six images, batch 4: the first batch is the first four indices of epoch 1's order.
  const values = [1, -1, 2, 0, 3, -2];
  const labels = [1, 0, 1, 0, 1, 0];
  const w0 = 0.3;
  const b0 = -1;
  const model = stubModel(w0, b0);
  const records: EpochMetrics[] = [];
  const steps: number[][] = [];
  await trainLoop(model, source(values, labels), source([1, -1, 2, 0], [1, 0, 1, 0]), { ...settings, epochs: 1 }, {
    onEpoch: (m, s) => {
      records.push(m);
      if (s) steps.push(s);
    },
  });
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  // Test set at epoch 0: logits w0 * v + b0 for v = 1, -1, 2, 0.
  const testLogits = [1, -1, 2, 0].map((v) => w0 * v + b0);
  const mean = testLogits.reduce((a, b) => a + b) / 4;
  const r0 = records[0];
  assert.ok(Math.abs(r0.logit_mean - mean) < 1e-6);
  assert.ok(Math.abs(r0.logit_sd - Math.sqrt(testLogits.reduce((a, z) => a + (z - mean) ** 2, 0) / 4)) < 1e-6);
  const probs = testLogits.map(sig);
  assert.ok(Math.abs(r0.mean_prob - probs.reduce((a, b) => a + b) / 4) < 1e-6);
  assert.equal(r0.test_positive_rate, 0.5);
  // Probabilities 0.332 (y 1), 0.214 (y 0), 0.401 (y 1), 0.269 (y 0); bins of 1/15: 0.214 in (0.2, 0.267],
  // 0.269 and 0.332 together in (0.267, 0.333], 0.401 in (0.4, 0.467].
  const ece = 0.25 * probs[1] + 0.5 * Math.abs(0.5 - (probs[0] + probs[3]) / 2) + 0.25 * (1 - probs[2]);
  assert.ok(Math.abs(r0.ece - ece) < 1e-6, `ECE ${r0.ece} vs ${ece}`);
  assert.equal(r0.loss_train_mode, null, "eval mode alone: no train-mode evaluation");
  // The first batch: epoch 1's first four indices, the batch the first step trains on.
  const first = Array.from(epochOrder(6, settings.seed, 1).subarray(0, 4));
  const batchLogits = first.map((i) => w0 * values[i] + b0);
  const batchMean = batchLogits.reduce((a, b) => a + b) / 4;
  assert.ok(Math.abs((r0.first_batch_logit_mean as number) - batchMean) < 1e-6);
  assert.ok(Math.abs((r0.first_batch_logit_sd as number) - Math.sqrt(batchLogits.reduce((a, z) => a + (z - batchMean) ** 2, 0) / 4)) < 1e-6);
  assert.equal(r0.first_batch_positive_rate, first.reduce((a, i) => a + labels[i], 0) / 4);
  // The BCE of those logits is the first step's loss.
  const bce = first.reduce((a, i, k) => a - (labels[i] * Math.log(sig(batchLogits[k])) + (1 - labels[i]) * Math.log(1 - sig(batchLogits[k]))), 0) / 4;
  assert.ok(Math.abs(steps[0][0] - bce) < 1e-6, `first step ${steps[0][0]} vs ${bce}`);
  assert.deepEqual([records[1].first_batch_logit_mean, records[1].first_batch_logit_sd, records[1].first_batch_positive_rate], [null, null, null], "epoch 0 only");
  tf.dispose([model.w, model.b]);
});

test("evalMode both: eval-mode metrics equal an eval run's, train-mode ones a train run's (tiny EfficientNet, batch statistics and dropout)", () => {
  const model = new BinaryClassifier("tiny", makeRng("loop.test", "both"));
  const rng = makeRng("loop.test", "images");
  const n = 12;
  const images = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
  const ys = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const test: BatchSource = {
    size: n, labels: Float32Array.from(ys),
    batch: (idx) => {
      const ids = Array.from(idx);
      const x = new Float32Array(ids.length * 3072);
      ids.forEach((id, k) => x.set(images.subarray(id * 3072, (id + 1) * 3072), k * 3072));
      return { x: tf.tensor4d(x, [ids.length, 32, 32, 3]), y: tf.tensor1d(ids.map((i) => ys[i])) };
    },
  };
  try {
    const both = evaluate(model, test, 8, "both", makeRng("loop.test", "eval"));
    const inEval = evaluate(model, test, 8, "eval", makeRng("loop.test", "eval"));
    const inTrain = evaluate(model, test, 8, "train", makeRng("loop.test", "eval"));
    assert.equal(both.loss, inEval.loss);
    assert.equal(both.roc_auc, inEval.roc_auc);
    assert.equal(both.ece, inEval.ece);
    assert.equal(both.loss_train_mode, inTrain.loss);
    assert.equal(both.roc_auc_train_mode, inTrain.roc_auc);
    assert.notEqual(inTrain.loss, inEval.loss, "batch statistics give other logits than running statistics");
    // From scratch in eval mode the backbone's output is ~0: every logit is the bias.
    assert.ok(inEval.logit_sd < 1e-6, `eval-mode logit SD ${inEval.logit_sd}`);
    assert.ok(Math.abs(inEval.logit_mean - model.outputBias()) < 1e-6);
    assert.equal(inEval.roc_auc, 0.5);
    assert.ok(inTrain.logit_sd > 1e-3, `train-mode logit SD ${inTrain.logit_sd}`);
  } finally {
    model.dispose();
  }
});

/** logit = w . mean_c(x) + b with a 3-vector w: named like a state_dict, with prefixed tf.Variable names. */
let stubs = 0;
function namedStub(): TrainableModel & { w: tf.Variable; b: tf.Variable } {
  const prefix = `m${++stubs}/`;
  // tidy keeps the variables and releases the initial values.
  const [w, b] = tf.tidy(() => [tf.variable(tf.tensor1d([0.1, -0.2, 0.3]), true, `${prefix}head.weight`), tf.variable(tf.tensor1d([0.05]), true, `${prefix}head.bias`)]);
  return {
    w, b,
    forward: (x) => tf.tidy(() => tf.add(tf.sum(tf.mul(tf.mean(x, [1, 2]), w), 1), b) as tf.Tensor1D),
    trainableVariables: () => [w, b],
    namedVariables: () => new Map([["head.weight", w], ["head.bias", b]]),
    outputBias: () => b.dataSync()[0],
  };
}

test("optimizer state travels by state_dict key: restored in any order, a wrong shape or name is a clear error", async () => {
  const values = [1, -1, 2, 0, 3, -2];
  const labels = [1, 0, 1, 0, 1, 0];
  const data = source(values, labels);
  const two = { ...settings, trainBatch: 2 };
  // Straight: two epochs in one go.
  const straight = namedStub();
  await trainLoop(straight, data, data, two);
  // Interrupted after epoch 1: its momentum buffers as the checkpoint would hold them.
  const first = namedStub();
  let saved: OptimizerState = [];
  await trainLoop(first, data, data, { ...two, epochs: 1 }, {
    onEpoch: async (m, _s, optimizerState) => {
      if (m.epoch === 1) saved = (await optimizerState()).map((s) => ({ name: s.name, tensor: s.tensor.clone() }));
    },
  });
  assert.deepEqual(saved.map((s) => s.name), ["head.weight", "head.bias"], "named by state_dict key, not by tf.Variable name");
  const copy = (): OptimizerState => saved.map((s) => ({ name: s.name, tensor: s.tensor.clone() }));
  // Resumed with the buffers in the reverse order: position must not matter.
  const resumed = namedStub();
  resumed.w.assign(first.w);
  resumed.b.assign(first.b);
  await trainLoop(resumed, data, data, two, {}, { epoch: 1, optimizer: copy().reverse() });
  assert.deepEqual(Array.from(resumed.w.dataSync()), Array.from(straight.w.dataSync()));
  assert.deepEqual(Array.from(resumed.b.dataSync()), Array.from(straight.b.dataSync()));

  const tensorsBefore = tf.memory().numTensors;
  const wrongShape = copy();
  wrongShape[0].tensor.dispose();
  wrongShape[0] = { name: "head.weight", tensor: tf.zeros([4]) };
  await assert.rejects(trainLoop(namedStub(), data, data, two, {}, { epoch: 1, optimizer: wrongShape }),
    (e: unknown) => e instanceof OptimizerStateError && /momentum buffer of "head\.weight" is float32 \[4\], the parameter float32 \[3\]/.test(e.message));
  const wrongName = copy();
  wrongName[1].name = "classifier.bias";
  await assert.rejects(trainLoop(namedStub(), data, data, two, {}, { epoch: 1, optimizer: wrongName }),
    (e: unknown) => e instanceof OptimizerStateError && /2 problem\(s\), first: "classifier\.bias" is not a parameter of this model/.test(e.message));
  // The rejected states were disposed (each failed run leaves only its stub model's two variables).
  assert.equal(tf.memory().numTensors, tensorsBefore + 4);
  tf.dispose(saved.map((s) => s.tensor));
});
