// The memory-frugal backward pass (src/train/frugal_backward.ts) against tf.variableGrads on the
// tiny EfficientNet + head in training mode: the same loss and bit-identical gradients (with and
// without block recompute, whose gradient runs a nested tf.grads), no tensor left behind, and a
// lower peak of TF.js-accounted memory.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../src/engine/backend";
import { BinaryClassifier } from "../src/model/head";
import { setBlockRecompute } from "../src/model/efficientnet";
import { makeRng } from "../src/rng";
import { frugalVariableGrads } from "../src/train/frugal_backward";

before(async () => {
  await initBackend();
});

type GradFn = (f: () => tf.Scalar, vars: tf.Variable[]) => { value: tf.Scalar; grads: tf.NamedTensorMap };

async function lossAndGrads(gradFn: GradFn): Promise<{ loss: number; grads: Float32Array[]; peakBytes: number; leaked: number }> {
  const net = new BinaryClassifier("tiny", makeRng(0, "frugal-test"));
  const x = tf.randomNormal([4, 64, 64, 3], 0, 1, "float32", 3) as tf.Tensor4D;
  const y = tf.tensor1d([1, 0, 0, 1]);
  const vars = net.trainableVariables();
  const before = tf.memory().numTensors;
  let out: { value: tf.Scalar; grads: tf.NamedTensorMap } | undefined;
  // tf.profile reports the most memory TF.js held at once while the function ran.
  const info = await tf.profile(() => {
    out = gradFn(() => tf.losses.sigmoidCrossEntropy(y, net.forward(x, { training: true, updateBatchNorm: true, rng: makeRng(1, "masks") })) as tf.Scalar, vars);
  });
  const { value, grads } = out as unknown as { value: tf.Scalar; grads: tf.NamedTensorMap };
  const result = { loss: value.dataSync()[0], grads: vars.map((v) => Float32Array.from(grads[v.name].dataSync())), peakBytes: info.peakBytes, leaked: 0 };
  tf.dispose([value, ...Object.values(grads)]);
  result.leaked = tf.memory().numTensors - before;
  tf.dispose([x, y]);
  net.dispose();
  return result;
}

for (const recompute of ["never", "always"] as const) {
  test(`same loss and bit-identical gradients as tf.variableGrads, nothing leaked, lower peak memory (block recompute ${recompute})`, async () => {
    setBlockRecompute(recompute);
    try {
      const reference = await lossAndGrads((f, v) => tf.variableGrads(f, v));
      const frugal = await lossAndGrads(frugalVariableGrads);
      console.log(`recompute ${recompute}: TF.js peak ${(frugal.peakBytes / 1e6).toFixed(1)} MB, tf.variableGrads ${(reference.peakBytes / 1e6).toFixed(1)} MB`);
      assert.equal(frugal.loss, reference.loss);
      assert.equal(frugal.grads.length, reference.grads.length);
      frugal.grads.forEach((g, i) => assert.deepEqual(g, reference.grads[i], `gradient ${i}`));
      assert.equal(frugal.leaked, 0, "tensors left behind by the frugal backward pass");
      assert.equal(reference.leaked, 0, "tensors left behind by tf.variableGrads");
      // Without recompute the tape holds every activation (measured: ~half the peak); with every block
      // recomputed there is little left to free early.
      const bound = recompute === "never" ? 0.8 : 1;
      assert.ok(frugal.peakBytes <= bound * reference.peakBytes, `peak ${frugal.peakBytes} B vs tf.variableGrads' ${reference.peakBytes} B`);
    } finally {
      setBlockRecompute("auto");
    }
  });
}

test("a loss that depends on no variable is an error; a variable it does not reach gets no gradient, as in tf.variableGrads", () => {
  const a = tf.variable(tf.scalar(2));
  const unused = tf.variable(tf.scalar(3));
  assert.throws(() => frugalVariableGrads(() => tf.scalar(1).square() as tf.Scalar, [a]), /depends on none of the variables/);
  const { value, grads } = frugalVariableGrads(() => a.square() as tf.Scalar, [a, unused]);
  assert.deepEqual(Object.keys(grads), [a.name]);
  assert.equal(grads[a.name].dataSync()[0], 4);
  tf.dispose([value, ...Object.values(grads), a, unused]);
});
