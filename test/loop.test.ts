// The training loop on a stub model small enough to check by hand: epoch 0 comes before any step,
// SGD momentum follows PyTorch's formula, a non-finite loss stops the run with a readable error,
// and the runner records that error in the results store.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { trainLoop, TrainingDiverged, TrainableModel, BatchSource, EpochMetrics, OptimizerState, OptimizerStateError } from "../src/train/loop";

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
    (e: unknown) => e instanceof OptimizerStateError && /head\.weight has shape \[4\], the model's is \[3\]/.test(e.message));
  const wrongName = copy();
  wrongName[1].name = "classifier.bias";
  await assert.rejects(trainLoop(namedStub(), data, data, two, {}, { epoch: 1, optimizer: wrongName }),
    (e: unknown) => e instanceof OptimizerStateError && /2 problem\(s\), first: no momentum buffer for head\.bias/.test(e.message));
  // The rejected states were disposed (each failed run leaves only its stub model's two variables).
  assert.equal(tf.memory().numTensors, tensorsBefore + 4);
  tf.dispose(saved.map((s) => s.tensor));
});
