// The imbalance sweep: positives subsampled to a target rate (every negative kept, the same subset
// for every arm and trial of a rate), the rate in the results key, the refusal of too few test
// positives, and the acceptance run: a smoke sweep at p = 0.1 and 0.02 through the runner the CLI
// and notebook 05 use, checked against H(measured p).
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError, makeConfig, mergeOverrides, NUMERICS_VERSION, PRESETS, SWEEP } from "../src/config";
import { canonicalJson, configHash, resultKeyFields } from "../src/experiment/result_key";
import { positivesForRate, selectImages, subsampleToRate } from "../src/data/subsample";
import { prepareData } from "../src/data/prepare";
import { DataError, IMAGE_BYTES } from "../src/data/cifar10";
import { writeSyntheticCifar10 } from "../src/data/synthetic";
import { planOverrides, planRates } from "../src/experiment/plans";
import { checkSweepData, loadSweep, parseRates, rateConfigs, runSweep, SweepResult } from "../src/experiment/sweep";
import { catchUpPerTrial } from "../src/experiment/stats/hockey_stick";
import { entropyNats } from "../src/maths";
import { parseCli } from "../src/cli";
import { pairedDifference } from "../src/experiment/stats/grouping";
import type { EpochRecord } from "../src/experiment/records";
import { storeFor } from "../src/experiment/grid";
import { sweepStartRows } from "../src/experiment/stats/sweep_stats";
import { sweepConclusions } from "../src/experiment/sweep_conclusions";
import { runSummaryText } from "../src/experiment/run_summary";
import { sweepStartFigure } from "../src/viz/sweep_figures";
import { runConfigsOnWorkers } from "../src/experiment/workers";
import { storeRows } from "./helpers/grid_runs";

const quiet = { setLine(): void {}, addRow(): void {}, finish(): void {} };

/** 0/1 labels: `negatives` zeros and `positives` ones, interleaved as a file would hold them. */
function labels(negatives: number, positives: number): Float32Array {
  const out = new Float32Array(negatives + positives);
  const every = Math.floor((negatives + positives) / positives);
  let placed = 0;
  for (let i = 0; i < out.length && placed < positives; i += every, placed++) out[i] = 1;
  return out;
}

describe("subsampling positives to a rate", () => {
  const l = labels(900, 100);

  test("every negative kept, round(negatives r / (1 - r)) positives, file order", () => {
    for (const [rate, k] of [[0.02, 18], [0.01, 9], [0.05, 47], [0.1, 100]] as const) {
      assert.equal(positivesForRate(900, rate), k);
      const s = subsampleToRate(l, rate, 0, "train");
      assert.equal(s.positives, k);
      assert.equal(s.negatives, 900);
      assert.equal(s.keep.length, 900 + k);
      const kept = Array.from(s.keep);
      assert.equal(kept.filter((i) => l[i] === 0).length, 900, "every negative is kept");
      assert.equal(kept.filter((i) => l[i] === 1).length, k);
      assert.deepEqual(kept, [...kept].sort((a, b) => a - b), "file order");
    }
  });

  test("the subset depends on the seed and the split only; a lower rate keeps a subset of a higher rate's positives", () => {
    const positives = (rate: number, seed: number, split: "train" | "test"): number[] => Array.from(subsampleToRate(l, rate, seed, split).keep).filter((i) => l[i] === 1);
    assert.deepEqual(positives(0.02, 0, "train"), positives(0.02, 0, "train"), "deterministic");
    assert.notDeepEqual(positives(0.02, 0, "train"), positives(0.02, 1, "train"), "another seed, another subset");
    assert.notDeepEqual(positives(0.02, 0, "train"), positives(0.02, 0, "test"), "each split its own order");
    const high = new Set(positives(0.05, 0, "train"));
    assert.ok(positives(0.02, 0, "train").every((i) => high.has(i)), "nested across rates");
  });

  test("a split at or below the target keeps every image; far above its own rate is refused", () => {
    assert.equal(subsampleToRate(l, 0.105, 0, "test").keep.length, 1000, "within the tolerance: all positives kept");
    assert.throws(() => subsampleToRate(l, 0.3, 0, "train"), (e: Error) => e instanceof DataError &&
      e.message === "data.targetPositiveRate: 0.3 is above the train set's own positive rate 0.1000 (100 of 1000 images); positives can only be dropped, never added: use a rate of at most 0.1000");
  });

  test("selectImages copies the chosen records' bytes and labels", () => {
    const images = Uint8Array.from({ length: 3 * IMAGE_BYTES }, (_, i) => Math.floor(i / IMAGE_BYTES) + 7);
    const picked = selectImages({ images, labels: Uint8Array.from([3, 6, 9]), n: 3, files: ["f"] }, [0, 2]);
    assert.equal(picked.n, 2);
    assert.deepEqual([...picked.labels], [3, 9]);
    assert.deepEqual([picked.images[0], picked.images[IMAGE_BYTES]], [7, 9]);
  });
});

describe("the rate in the config and the results key", () => {
  test("validated; null (the default) leaves the key as it was before the knob, a rate enters it", () => {
    assert.throws(() => makeConfig("smoke", { data: { targetPositiveRate: 1.5 } }), /config\.data\.targetPositiveRate: 1\.5 must be null \(the data's own rate\) or a number in \(0, 1\)/);
    for (const preset of PRESETS) {
      const c = makeConfig(preset);
      assert.equal(c.data.targetPositiveRate, null);
      // The key of the same config written without the field, as stores before the knob were hashed (data.dir is never in it).
      const { targetPositiveRate: _r, dir: _d, ...oldData } = c.data;
      const old: Record<string, unknown> = { ...c, data: oldData, numericsVersion: NUMERICS_VERSION };
      for (const f of ["preset", "backbones", "arms", "trials"]) delete old[f];
      assert.equal(configHash(c), createHash("sha256").update(canonicalJson(old)).digest("hex").slice(0, 12), preset);
    }
    const base = makeConfig("smoke");
    const hashes = rateConfigs(base, [0.1, 0.02, 0.01]).map(configHash);
    assert.equal(new Set([...hashes, configHash(base)]).size, 4, "one store per rate, none shared with the natural rate");
    assert.deepEqual((resultKeyFields(rateConfigs(base, [0.02])[0]) as { data: { targetPositiveRate: number } }).data.targetPositiveRate, 0.02);
  });

  test("rates: parsed from the CLI, highest first, duplicates and out-of-range refused; the sweep plan's settings", () => {
    assert.deepEqual(parseRates("0.01, 0.1,0.02"), [0.01, 0.1, 0.02]);
    assert.throws(() => parseRates("0.1,1"), (e: Error) => e instanceof ConfigError && /^--rates: "0\.1,1" is not a list of positive rates in \(0, 1\)/.test(e.message));
    assert.deepEqual(parseCli(["--rates", "0.1,0.02"], {}).rates, [0.1, 0.02]);
    assert.equal(parseCli([], {}).rates, null);
    const base = makeConfig("quick");
    assert.deepEqual(rateConfigs(base, [0.01, 0.1, 0.02]).map((c) => c.data.targetPositiveRate), [0.1, 0.02, 0.01]);
    assert.throws(() => rateConfigs(base, [0.1, 0.1]), /lists a rate twice/);
    assert.deepEqual(planRates("sweep", "quick"), [0.1, 0.02, 0.01]);
    assert.equal(planRates("scratch", "quick"), null);
    const quick = makeConfig("quick", planOverrides("sweep", "quick"));
    assert.deepEqual([quick.backbones, quick.model, quick.trials, quick.epochs, quick.data.trainLimit, quick.input.crop], [["scratch"], "b1", 2, 3, 10000, 32]);
    assert.equal(quick.data.testLimit, SWEEP.overrides.quick.data?.testLimit);
  });
});

describe("each rate's data, measured and checked before anything is written", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-sweep-data-"));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  writeSyntheticCifar10(root, { perTrainBatch: 1000, testCount: 3000, seed: 2 });
  const data = (over: Record<string, unknown>) => ({ source: "cifar10" as const, dir: root, positiveClass: "frog", trainLimit: 5000, testLimit: 2500, targetPositiveRate: null, ...over });

  test("both splits subsampled, the rates measured, the note says how many positives each split holds", () => {
    const d = prepareData(data({ targetPositiveRate: 0.01 }), { seed: 0 });
    // 4,500 and 2,250 negatives (the synthetic files are exactly 10% frogs).
    assert.deepEqual(d.counts, { train: { images: 4545, positives: 45 }, test: { images: 2273, positives: 23 } });
    assert.equal(d.positiveRate, 45 / 4545);
    assert.equal(d.testPositiveRate, 23 / 2273);
    assert.equal(d.trainLabels.reduce((a, b) => a + b, 0), 45);
    assert.match(d.note, /positives subsampled to target rate 0\.01 \(all negatives kept\): train 4545 images, 45 positive; test 2273 images, 23 positive, measured train positive rate 0\.0099, test 0\.0101$/);
    // The same subset whatever else runs: a second load gives the same images.
    assert.deepEqual(prepareData(data({ targetPositiveRate: 0.01 }), { seed: 0 }).test.images, d.test.images);
    assert.throws(() => prepareData(data({ targetPositiveRate: 0.01 })), /needs the config's seed/);
  });

  test("fewer than 20 test positives is refused, naming the count and a test limit that works", () => {
    assert.throws(() => prepareData(data({ targetPositiveRate: 0.01, testLimit: 1500 }), { seed: 0 }), (e: Error) => e instanceof DataError &&
      e.message === "data.targetPositiveRate: 0.01 leaves 14 positives among 1364 test images (fewer than 20: too few for ROC-AUC and calibration); " +
        "use more test images (--test-limit 2200 or more) or a higher rate");
    // A test limit the file cannot give (3,000 images here) is never suggested.
    assert.throws(() => prepareData(data({ targetPositiveRate: 0.005, testLimit: 2500 }), { seed: 0 }), (e: Error) => e instanceof DataError &&
      e.message === "data.targetPositiveRate: 0.005 leaves 11 positives among 2261 test images (fewer than 20: too few for ROC-AUC and calibration); " +
        "it would take --test-limit 4400, more than the 3000 images the test file holds: use a higher rate");
    const configs = rateConfigs(makeConfig("smoke", { data: { source: "cifar10", dir: root, testLimit: 2200 } }), [0.1, 0.01]);
    assert.deepEqual(checkSweepData(configs, path.join(root, "no-results")).map((c) => c.counts.test.positives), [220, 20]);
  });
});

test("acceptance: a smoke sweep at p = 0.1 and 0.02 starts at H(measured p), vanilla above, and shows the hockey stick; on two workers, the same rows", async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-sweep-e2e-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const base = makeConfig("smoke", mergeOverrides(planOverrides("sweep", "smoke"), { data: { source: "synthetic", dir: path.join(root, "data") }, trials: 1, epochs: 1 }));
  const targets = planRates("sweep", "smoke") as readonly number[];
  assert.deepEqual(targets, [0.1, 0.02]);
  const configs = rateConfigs(base, targets);
  const starts: Array<{ rate: number | null; tested: number }> = [];
  const run = await runSweep(configs, { resultsDir: path.join(root, "results"), view: () => quiet, onStart: (e, c) => starts.push({ rate: c.data.targetPositiveRate, tested: e.counts.test.positives }) });
  const sweep = run.sweep as SweepResult;
  assert.ok(sweep);
  assert.deepEqual(starts.map((s) => s.rate), [0.1, 0.02]);
  assert.ok(starts.every((s) => s.tested >= SWEEP.minTestPositives), JSON.stringify(starts));
  assert.equal(sweep.points.length, 2);
  for (const { rate, result } of sweep.points) {
    const p = result.positiveRate as number;
    const testP = result.testPositiveRate as number;
    assert.ok(Math.abs(p - rate) <= 0.1 * rate && Math.abs(testP - rate) <= 0.1 * rate, `rate ${rate}: measured train ${p}, test ${testP}`);
    const records = sweep.records.filter((r) => r.target_positive_rate === rate);
    assert.equal(records.length, 4, `rate ${rate}: 2 arms x epochs 0 and 1`);
    const start = (arm: string) => records.find((r) => r.arm === arm && r.epoch === 0);
    const h = entropyNats(p);
    const positive = start("positive_rate")?.loss as number;
    const vanilla = start("vanilla")?.loss as number;
    assert.ok(Math.abs(positive - h) < 0.02, `rate ${rate}: positive-rate epoch-0 BCE ${positive} within 0.02 of H(${p}) = ${h}`);
    assert.ok(vanilla > h + 0.02, `rate ${rate}: vanilla epoch-0 BCE ${vanilla} above H(p) = ${h}`);
    const steps = sweep.steps.filter((s) => s.target_positive_rate === rate);
    const [pair] = catchUpPerTrial(steps);
    // The excess loss is the epoch's summed paired difference. Its sign is not asserted: over this
    // smoke run's 40 steps on synthetic data (one trial) it flips with float round-off (-1.59 with
    // one set of the native engine's kernels, positive with the others); the first steps are.
    const along = (arm: string) => steps.filter((s) => s.arm === arm).sort((a, b) => a.step - b.step).map((s) => s.loss);
    const summed = along("vanilla").reduce((sum, v, i) => sum + v - along("positive_rate")[i], 0);
    assert.ok(Math.abs(pair.excess_loss - summed) < 1e-9, `rate ${rate}: excess loss ${pair.excess_loss}, summed ${summed}`);
    // Steps to catch up is positive: at the first step the vanilla arm is more than 5% above (its
    // smoothed loss starts at its first loss); null means it stayed above for the whole first epoch.
    const first = (arm: string) => steps.find((s) => s.arm === arm && s.step === 1)?.loss as number;
    assert.ok(first("vanilla") > 1.05 * first("positive_rate"), `rate ${rate}: first step losses ${first("vanilla")} and ${first("positive_rate")}`);
    assert.ok(pair.steps_to_catch_up === null || (pair.steps_to_catch_up >= 1 && pair.steps_to_catch_up < pair.steps), `rate ${rate}: steps to catch up ${pair.steps_to_catch_up} of ${pair.steps}`);
  }
  // The rate travels with every record; the stores are read back the same without training.
  assert.deepEqual(loadSweep(configs, path.join(root, "results")).records, sweep.records);
  // Notebook 05's `nb.sweep(true, { workers: 2 })`: two worker processes over both rates' stores give the serial run's rows.
  // Workers on the CPU split its cores (workers.ts cpuWorkerEnv), which moves results at float
  // round-off; here they get this process's thread count, so that their rows are bit for bit these.
  const onWorkers = path.join(root, "results-workers");
  const userThreads = process.env.TF_NUM_INTRAOP_THREADS;
  process.env.TF_NUM_INTRAOP_THREADS = userThreads ?? String(os.availableParallelism());
  t.after(() => (userThreads === undefined ? delete process.env.TF_NUM_INTRAOP_THREADS : (process.env.TF_NUM_INTRAOP_THREADS = userThreads)));
  const workers = await runConfigsOnWorkers(configs, { workers: 2, resultsDir: onWorkers, view: { setLine: () => undefined, addRow: () => undefined, finish: () => undefined } });
  assert.equal(workers.trained, true);
  assert.equal(workers.stopped, false);
  for (const c of configs) assert.deepEqual(storeRows(c, onWorkers), storeRows(c, path.join(root, "results")), `rate ${c.data.targetPositiveRate}`);
  const again = await runConfigsOnWorkers(configs, { workers: 2, resultsDir: onWorkers, view: { setLine: () => undefined, addRow: () => undefined, finish: () => undefined } });
  assert.equal(again.trained, false, "a finished sweep starts no worker");
  // A finished sweep's check (notebook 05 run again) takes the counts its stores measured and loads no data: here there is none left.
  fs.rmSync(path.join(root, "data"), { recursive: true });
  const checked = checkSweepData(configs, path.join(root, "results"));
  assert.deepEqual(checked.map((c) => c.rate), [0.1, 0.02]);
  assert.deepEqual(checked.map((c) => c.counts), sweep.points.map((p) => p.result.counts));
  assert.ok(checked.every((c) => c.counts.test.positives >= SWEEP.minTestPositives));
});

test("third arm, through the runner: spread 0 at the first step (its loss is that of a constant prediction), paired with the others on trial", async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-sweep-zero-head-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const config = makeConfig("smoke", { data: { source: "synthetic", dir: path.join(root, "data") }, backbones: ["scratch"], arms: ["vanilla", "positive_rate", "positive_rate_zero_head"], trials: 1, epochs: 1 });
  const { runs } = await runSweep([config], { resultsDir: path.join(root, "results"), view: () => quiet });
  const result = runs[0].result;
  const start = (arm: string) => result.records.find((r) => r.arm === arm && r.epoch === 0) as EpochRecord;
  const zero = start("positive_rate_zero_head");
  const prior = start("positive_rate");
  assert.equal(zero.first_batch_logit_sd, 0, "every first-batch logit in train mode is the bias");
  assert.equal(zero.first_batch_logit_mean, zero.output_bias_value);
  assert.equal(zero.output_bias_value, prior.output_bias_value);
  assert.ok((prior.first_batch_logit_sd as number) > 0.01, `the positive-rate arm's first-batch logits spread (SD ${prior.first_batch_logit_sd})`);
  // Eval mode from scratch: both prior arms predict sigmoid(bias) for every test image.
  assert.equal(zero.loss, prior.loss);
  // The first step's loss is the BCE of the constant prediction sigmoid(bias) on the first batch.
  const q = zero.first_batch_positive_rate as number;
  const s = 1 / (1 + Math.exp(-zero.output_bias_value));
  const constant = -(q * Math.log(s) + (1 - q) * Math.log(1 - s));
  const firstStep = (arm: string) => result.steps.find((x) => x.arm === arm && x.step === 1)?.loss as number;
  assert.ok(Math.abs(firstStep("positive_rate_zero_head") - constant) < 1e-5, `first step ${firstStep("positive_rate_zero_head")} vs constant ${constant}`);
  assert.ok(Math.abs(firstStep("positive_rate") - constant) > 1e-4, `with the drawn head weights the first loss is not the constant's: ${firstStep("positive_rate")} vs ${constant}`);
  // Paired like the others: differences against vanilla, on the same trial.
  const diff = pairedDifference(result.records, "loss", "positive_rate_zero_head");
  assert.deepEqual(diff.map((d) => [d.epoch, d.n, d.unmatched]), [[0, 1, 0], [1, 1, 0]]);
  assert.ok(Math.abs(diff[0].mean - (zero.loss - start("vanilla").loss)) < 1e-12);
  assert.equal(catchUpPerTrial(result.steps, { against: "positive_rate_zero_head" }).length, 1);
});

test("a diverged unit at one rate is left out of that rate's numbers and counted, in the figures, the conclusions and the CLI summary", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bias-sweep-diverged-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const configs = rateConfigs(makeConfig("smoke", mergeOverrides(planOverrides("sweep", "smoke"), { data: { source: "synthetic", dir: path.join(root, "data") } })), [0.1, 0.02]);
  for (const config of configs) {
    const rate = config.data.targetPositiveRate as number;
    const { store, dataset } = storeFor(config, path.join(root, "results"));
    store.init({ positiveRate: rate, testPositiveRate: rate, counts: { train: { images: 1000, positives: 1000 * rate }, test: { images: 1000, positives: 1000 * rate } } });
    for (const arm of ["vanilla", "positive_rate"] as const) {
      for (const trial of [0, 1]) {
        const diverged = rate === 0.02 && arm === "positive_rate" && trial === 1;
        const unit = { backbone: "scratch" as const, arm, trial };
        for (const epoch of diverged ? [0, 1] : [0, 1, 2]) {
          const steps = epoch !== 1 ? null : [1, 2, 3].map((step) => ({ backbone: "scratch" as const, target_positive_rate: rate, arm, trial, epoch: 1, step, loss: arm === "vanilla" ? 0.7 : 0.3 }));
          store.appendEpoch(unit, { backbone: "scratch", target_positive_rate: rate, arm, trial, epoch, loss: arm === "vanilla" ? 0.69 : entropyNats(rate) + 0.01 * trial,
            roc_auc: 0.5, output_bias_value: 0, train_loss: null, wall_s: 1, images_per_s: null, seed: trial, dataset, backend: "js" }, null, steps);
        }
        store.setStatus(unit, diverged ? "failed" : "done", diverged ? "training diverged (test)" : null);
      }
    }
  }
  const sweep = loadSweep(configs, path.join(root, "results"));
  const note = "Vanilla: n = 2 of 2 trials. Positive rate: n = 1 of 2 trials; 1 diverged (excluded).";
  const start = sweepStartFigure(sweep);
  assert.ok(JSON.stringify(start.layout).includes(`p = 0.0200 (target 0.02): ${note}`), "the figure's note counts it");
  assert.ok(!JSON.stringify(start.layout).includes("p = 0.1000 (target 0.1): "), "nothing left out at 0.1");
  // The positive-rate arm's epoch-0 BCE at 0.02 is trial 0's alone (trial 1 diverged).
  const rows = sweepStartRows(sweep).filter((r) => r.target === 0.02 && r.arm === "positive_rate");
  assert.deepEqual(rows.map((r) => [r.n, r.mean]), [[1, entropyNats(0.02)]]);
  assert.match(sweepConclusions(sweep), new RegExp(`target 0\\.02; train 1000 images, 20 positive; test 1000 images, 20 positive\\) \\(${note.replace(/[().]/g, "\\$&")}\\)`));
  assert.match(runSummaryText(sweep.points[1].result), new RegExp(`left out of the numbers below: ${note.replace(/[().]/g, "\\$&")}`));
  assert.doesNotMatch(runSummaryText(sweep.points[0].result), /left out/);
});
