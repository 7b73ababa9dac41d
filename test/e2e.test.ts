// End to end: the tiny EfficientNet on generated data, both arms, two epochs, through the same
// runner the CLI and notebooks use. Checks the experiment's central claim on a small scale.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";
import { makeConfig } from "../src/config";
import { runExperiment, loadResults, RunEvent } from "../src/experiment/grid";
import { entropyNats } from "../src/maths";
import { catchUpPerTrial } from "../src/experiment/stats/hockey_stick";

function tempRoot(t: { after(fn: () => void): void }): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-e2e-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}

test("tiny model on synthetic data: positive-rate arm starts at H(p), vanilla above it, both learn, no tensor leak", async (t) => {
  const root = tempRoot(t);
  const config = makeConfig("smoke", {
    data: { source: "synthetic", dir: path.join(root, "data") },
    backbones: ["scratch"], trials: 1, epochs: 2,
  });
  const epochTensors: number[] = [];
  const tensorsAtStart = tf.memory().numTensors;
  let start: Extract<RunEvent, { type: "start" }> | null = null;
  const result = await runExperiment(config, {
    resultsDir: path.join(root, "results"),
    onEvent: (e) => {
      if (e.type === "start") start = e;
      if (e.type === "epoch" && e.unit.arm === "positive_rate") epochTensors.push(e.numTensors);
    },
  });
  assert.ok(start, "the run announced its start");
  assert.equal(result.dataset, "synthetic");
  const p = result.positiveRate as number;
  assert.ok(Math.abs(p - 0.1) < 0.01, `measured positive rate ${p} is about 0.1`);

  const at = (arm: string, epoch: number) => {
    const r = result.records.find((x) => x.arm === arm && x.epoch === epoch);
    assert.ok(r, `record ${arm} epoch ${epoch}`);
    return r;
  };
  const h = entropyNats(p);
  const pr0 = at("positive_rate", 0);
  const va0 = at("vanilla", 0);
  assert.ok(Math.abs(pr0.loss - h) < 0.02, `positive-rate epoch-0 BCE ${pr0.loss} within 0.02 of H(p)=${h}`);
  assert.ok(va0.loss > pr0.loss + 0.1, `vanilla epoch-0 BCE ${va0.loss} is well above the positive-rate arm's ${pr0.loss}`);
  assert.ok(Math.abs(pr0.output_bias_value - Math.log(p / (1 - p))) < 1e-6, "positive-rate bias is log(p/(1-p)) at epoch 0");
  for (const arm of ["vanilla", "positive_rate"]) {
    assert.ok(at(arm, 2).roc_auc > 0.5, `${arm} ROC-AUC at the last epoch ${at(arm, 2).roc_auc} beats 0.5`);
    // Epoch 0 in eval mode from scratch: every test logit is the bias, so every probability is
    // sigmoid(bias), all in one calibration bin: ECE = |test positive rate - sigmoid(bias)|.
    const r0 = at(arm, 0);
    const q = 1 / (1 + Math.exp(-r0.output_bias_value));
    assert.equal(r0.logit_sd, 0, `${arm}: epoch-0 test logits all equal`);
    assert.equal(r0.logit_mean, r0.output_bias_value);
    assert.ok(Math.abs((r0.mean_prob as number) - q) < 1e-15);
    assert.ok(Math.abs((r0.ece as number) - Math.abs((r0.test_positive_rate as number) - q)) < 1e-12, `${arm}: ECE ${r0.ece}`);
    assert.ok((r0.first_batch_logit_sd as number) > 0, `${arm}: train-mode logits of the first batch spread`);
    assert.equal(at(arm, 1).first_batch_logit_sd, null);
  }
  // Both arms start from the same weights and see the same first batch: the spread is the same, the mean differs by the bias.
  assert.ok(Math.abs((va0.first_batch_logit_sd as number) - (pr0.first_batch_logit_sd as number)) < 1e-5);
  const shift = (pr0.first_batch_logit_mean as number) - (va0.first_batch_logit_mean as number);
  assert.ok(Math.abs(shift - (pr0.output_bias_value - va0.output_bias_value)) < 1e-5, `the bias moves the mean logit by ${shift}`);
  const [hockey] = catchUpPerTrial(result.steps);
  assert.ok(hockey.excess_loss > 0, `vanilla's excess loss over the first epoch ${hockey.excess_loss} is positive`);
  // Epoch 0 precedes the first step, which creates one momentum buffer per trainable variable;
  // from then on the number of live tensors must not move.
  assert.equal(epochTensors.length, 3);
  assert.equal(epochTensors[1], epochTensors[2], `numTensors after epochs 1 and 2: ${epochTensors.join(", ")}`);

  // Every model, optimizer and batch of both units was released.
  assert.equal(tf.memory().numTensors, tensorsAtStart, "no tensor outlives the run");

  // A finished run comes back from the store without training.
  let trained = false;
  const again = await runExperiment(config, { resultsDir: path.join(root, "results"), onEvent: (e) => { if (e.type === "step") trained = true; } });
  assert.equal(trained, false);
  assert.deepEqual(again.records, result.records);
  assert.deepEqual(loadResults(config, path.join(root, "results")).records, result.records);
});

test("the pretrained half of the tiny model reports unavailable weights instead of training from scratch", async (t) => {
  const root = tempRoot(t);
  const config = makeConfig("smoke", { data: { source: "synthetic", dir: path.join(root, "data") }, backbones: ["imagenet"], trials: 1, epochs: 1 });
  const result = await runExperiment(config, { resultsDir: path.join(root, "results") });
  assert.equal(result.records.length, 0);
  assert.equal(result.unavailable.length, 2);
  for (const u of result.unavailable) assert.match(u.message, /ImageNet weights|weights/i);
});
