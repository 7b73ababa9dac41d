// EfficientNet and the binary head as torchvision builds them: channel rounding and depth scaling,
// state_dict keys and PyTorch shapes, parameter counts (printed by torchvision 0.28 itself), the
// walkthrough's model table, init distributions, the head's bias arms, and checkpoints' round trip.
// The ops' semantics and the training step's behaviour are in test/model.test.ts.
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
import { BinaryClassifier, positiveRateBias } from "../src/model/head";
import type { ModelName } from "../src/config";
import { maxAbs, seededTensor } from "./helpers/tensors";

// Printed from torchvision: sum(p.numel() for p in model.parameters()), len(state_dict) without
// num_batches_tracked, and sha256 of "key d0,d1,..." lines in state_dict order. "tiny" is
// EfficientNet(_efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.5)[0], 0.2).
const TORCHVISION: Record<ModelName, { params: number; keys: number; sha256: string }> = {
  tiny: { params: 519_822, keys: 197, sha256: "df64c3da0ebde9c95d556a042563b37d9ea97ca4977f74631b9c1767f37da50d" },
  b0: { params: 5_288_548, keys: 311, sha256: "30b11f328be1f18c8d1090d18c439b834707264ccf80b9e35347c65baf4d8ce0" },
  b1: { params: 7_794_184, keys: 439, sha256: "659185f37b85a55dfd23beaf16865b5addd68558d8456647b06a8debc41e6d8d" },
};

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

    const x = seededTensor("model-test", [2, 32, 32, 3], 1) as tf.Tensor4D;
    const y = model.forward(x, { training: false });
    assert.deepEqual(y.shape, [2]);
    assert.ok(Array.from(y.dataSync()).every(Number.isFinite));
    tf.dispose([x, y]);
  } finally {
    model.dispose();
  }
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
  const x = seededTensor("model-test", [6, 32, 32, 3], 3) as tf.Tensor4D;
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
  const x = seededTensor("model-test", [2, 32, 32, 3], 5) as tf.Tensor4D;
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

