// NUMERICS_VERSION is the version of the numbers this code produces (src/config.ts). It is pinned
// here next to a fingerprint recomputed on the engine under test: a short run of the tiny model
// through the grid runner (data pipeline, initialization, both bias arms, forward and backward
// passes, SGD with momentum, evaluation metrics). A change that moves any of these numbers fails
// this test until NUMERICS_VERSION is bumped and the fingerprint below updated with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeConfig, NUMERICS_VERSION } from "../src/config";
import { resultKeyFields } from "../src/experiment/result_key";
import { runExperiment, storeFor } from "../src/experiment/grid";
import { writeSyntheticCifar10 } from "../src/data/synthetic";

/** Compared to this many decimals: pure JS and native TensorFlow agree far beyond it. */
const DECIMALS = 4;

/**
 * What version 13 computes (the same as versions 1 to 12 to these decimals; see docs/numerics.md): per arm, test BCE and output bias at epochs 0 and 1 and the mean train
 * loss. ROC-AUC is left out: this untrained model scores the test images nearly alike, and how
 * rounding breaks those ties differs between engines (0.5 on pure JS, 0.65 native).
 */
const PINNED = {
  version: 13,
  fingerprint: {
    "vanilla epoch 0 loss": 0.686865, "vanilla epoch 0 bias": -0.016167, "vanilla epoch 1 loss": 0.657998,
    "vanilla epoch 1 bias": -0.073007, "vanilla epoch 1 train_loss": 0.652428,
    "positive_rate epoch 0 loss": 0.345534, "positive_rate epoch 0 bias": -2.179983, "positive_rate epoch 1 loss": 0.345538,
    "positive_rate epoch 1 bias": -2.182087, "positive_rate epoch 1 train_loss": 0.329904,
  } as Record<string, number>,
};

/** The fingerprint, and the notes the run printed (a store of older code beside it is named, never reused). */
async function fingerprint(): Promise<{ values: Record<string, number>; notes: string[]; older: string; dir: string }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-numerics-"));
  try {
    writeSyntheticCifar10(path.join(root, "data"), { perTrainBatch: 200, testCount: 64, seed: 5 });
    const config = makeConfig("smoke", {
      data: { source: "cifar10", dir: path.join(root, "data"), trainLimit: 128, testLimit: 64 },
      backbones: ["scratch"], trials: 1, epochs: 1,
    });
    // What the code before this version left for the same config: another hash, same fields.
    const older = path.join(root, "results", "0123456789ab");
    fs.mkdirSync(older, { recursive: true });
    const { resolved } = storeFor(config, path.join(root, "results"));
    fs.writeFileSync(path.join(older, "config.json"), JSON.stringify({ ...resultKeyFields(resolved), numericsVersion: NUMERICS_VERSION - 1, dataset: "synthetic" }));
    const before = fs.readFileSync(path.join(older, "config.json"), "utf8");
    const notes: string[] = [];
    const result = await runExperiment(config, { resultsDir: path.join(root, "results"), onEvent: (e) => e.type === "note" && notes.push(e.text) });
    if (fs.readdirSync(older).join() !== "config.json" || fs.readFileSync(path.join(older, "config.json"), "utf8") !== before) throw new Error("the older store was touched");
    const out: Record<string, number> = {};
    for (const r of result.records) {
      const unit = `${r.arm} epoch ${r.epoch}`;
      out[`${unit} loss`] = r.loss;
      out[`${unit} bias`] = r.output_bias_value;
      if (r.train_loss !== null) out[`${unit} train_loss`] = r.train_loss;
    }
    return { values: out, notes, older, dir: result.dir };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

test(`the numbers of NUMERICS_VERSION ${NUMERICS_VERSION} are the pinned ones; a store of older code beside it is named, never reused`, async () => {
  const { values: got, notes, older, dir } = await fingerprint();
  assert.deepEqual(notes, [`${older} holds this config's results from code of numerics version ${NUMERICS_VERSION - 1}; this code is version ${NUMERICS_VERSION}, so this run starts fresh in ${dir}`]);
  const rounded = Object.fromEntries(Object.entries(got).map(([k, v]) => [k, Number(v.toFixed(DECIMALS + 2))]));
  const bump = `if this change of numbers is intended, bump NUMERICS_VERSION in src/config.ts (now ${NUMERICS_VERSION}) ` +
    `and pin the new fingerprint here: ${JSON.stringify(rounded)}`;
  assert.equal(NUMERICS_VERSION, PINNED.version, `NUMERICS_VERSION is ${NUMERICS_VERSION} but the fingerprint pinned here is version ${PINNED.version}: ${bump}`);
  assert.deepEqual(Object.keys(got).sort(), Object.keys(PINNED.fingerprint).sort(), `the fingerprint's values changed: ${bump}`);
  for (const [key, value] of Object.entries(PINNED.fingerprint)) {
    assert.ok(Math.abs(got[key] - value) <= 0.5 * 10 ** -DECIMALS, `${key} is ${got[key]}, version ${PINNED.version} computes ${value} (to ${DECIMALS} decimals): ${bump}`);
  }
});
