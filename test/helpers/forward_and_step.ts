// Child process for test/backends.test.ts: on the backend named by BIAS_INIT_BACKEND, builds a
// seeded B1 + head, runs an eval-mode forward and one SGD-momentum training step on a fixed batch,
// and prints the numbers as one JSON line. Each backend runs in its own process.
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../src/engine/backend";
import { BinaryClassifier } from "../../src/model/head";
import { makeRng } from "../../src/rng";

async function main(): Promise<void> {
  const info = await initBackend();
  const model = new BinaryClassifier("b1", makeRng(7, "init"));
  model.initHeadBias("positive_rate", 0.1);
  const rng = makeRng(7, "data");
  const n = 8;
  const x = tf.tensor4d(Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal()), [n, 32, 32, 3]);
  const y = tf.tensor1d([1, 0, 0, 0, 0, 1, 0, 0]);
  const logits = Array.from(model.forward(x, { training: false }).dataSync());
  const backboneLogits = Array.from(model.backbone.forward(x, { training: false }).dataSync().slice(0, 50));
  const before = model.getWeights();
  const optimizer = tf.train.momentum(0.1, 0.9);
  const loss = optimizer.minimize(() => tf.losses.sigmoidCrossEntropy(y, model.forward(x, { training: true, updateBatchNorm: true, rng: makeRng(7, "step") })) as tf.Scalar, true, model.trainableVariables());
  const after = model.getWeights();
  // Parameter updates (lr * gradient on the first step) of a few layers spread through the net.
  const keys = ["features.0.0.weight", "features.2.0.block.1.0.weight", "features.5.2.block.2.fc1.weight", "features.8.1.weight", "classifier.1.weight", "head.weight", "head.bias", "features.8.1.running_var"];
  const updates: Record<string, number[]> = {};
  for (const k of keys) {
    const a = after.get(k) as Float32Array;
    const b = before.get(k) as Float32Array;
    updates[k] = Array.from(a.slice(0, 64), (v, i) => v - b[i]);
  }
  console.log(JSON.stringify({ backend: info.kind, logits, backboneLogits, loss: loss?.dataSync()[0], updates }));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
