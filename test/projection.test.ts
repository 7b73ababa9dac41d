// Knowing the cost before paying it: the projection arithmetic (experiment/projection.ts), the sizes a
// dry run reads from the batch files, the probe's batch caps, the projection a run prints after
// its first epoch, and `--dry-run` itself: it measures on the active engine and writes nothing.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeConfig, PRESET_CONFIGS, SPEED_PROBE } from "../src/config";
import { FirstEpochProjector, project, projectionText, unitCounts } from "../src/experiment/projection";
import { splitSizes } from "../src/experiment/dry_run";
import { probeBatch } from "../src/experiment/speed_probe";
import { writeSyntheticCifar10 } from "../src/data/synthetic";
import { formatDuration } from "../src/util/duration";
import { ROOT, run } from "./helpers/fake_gpu";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bias-projection-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("a unit is its set-up, epochs+1 evaluations and its training epochs; selection and grid are that many units", () => {
  const cost = { trainEpochS: 117.5, evalS: 6.25, setupS: 1.5 };
  const counts = { selected: 4, toRun: 3, grid: 8 };
  const p = project(cost, 3, counts);
  const unit = 1.5 + 4 * 6.25 + 3 * 117.5;
  assert.equal(p.unitS, unit);
  assert.equal(p.epochS, 117.5 + 6.25);
  assert.deepEqual([p.selectionS, p.toRunS, p.gridS], [4 * unit, 3 * unit, 8 * unit]);
  const line = projectionText(p, cost, 85.1);
  assert.ok(line.includes(`unit ~${formatDuration(unit)}`), line);
  assert.ok(line.includes(`selection 4 unit(s) ~${formatDuration(4 * unit)} (3 still to run: ~${formatDuration(3 * unit)})`), line);
  assert.ok(line.includes(`whole grid 8 unit(s) ~${formatDuration(8 * unit)}`), line);
  assert.ok(line.includes("85.1 img/s"), line);
});

test("unit counts: backbones x arms x trials, without the ImageNet half of a model that has no ImageNet weights", () => {
  const quick = makeConfig("quick");
  assert.deepEqual(unitCounts(quick), { selected: 2 * 2 * quick.trials, toRun: 2 * 2 * quick.trials, grid: 2 * 2 * quick.trials });
  const scratchOnly = makeConfig("quick", { backbones: ["scratch"], arms: ["vanilla"], trials: 3 });
  assert.deepEqual(unitCounts(scratchOnly, 2), { selected: 3, toRun: 2, grid: 2 * 2 * 3 });
  const smoke = makeConfig("smoke");
  assert.deepEqual(unitCounts(smoke), { selected: 2 * smoke.trials, toRun: 2 * smoke.trials, grid: 2 * smoke.trials });
});

test("the projection after the first epoch comes from that epoch's own times, once", () => {
  const config = makeConfig("quick", { backbones: ["scratch"] });
  let now = 100;
  const projector = new FirstEpochProjector(config, () => now);
  projector.start([{ backbone: "scratch" }, { backbone: "scratch" }, { backbone: "scratch" }]);
  projector.unitStarted();
  now = 110; // 4 s of evaluation after 6 s of model set-up
  assert.equal(projector.epochDone(0, 4, null), null);
  now = 134;
  const line = projector.epochDone(1, 24, 500);
  assert.ok(line);
  const unit = 6 + (config.epochs + 1) * 4 + config.epochs * 20;
  assert.ok(line.startsWith(`projection after the first epoch: epoch ~${formatDuration(24)} (training ${formatDuration(20)} at 500.0 img/s`), line);
  const selected = 2 * config.trials;
  assert.ok(line.includes(`selection ${selected} unit(s) ~${formatDuration(selected * unit)} (3 still to run: ~${formatDuration(3 * unit)})`), line);
  assert.ok(line.includes(`this run ~${formatDuration(3 * unit)} in all, ~${formatDuration(3 * unit - 34)} left`), line);
  assert.equal(projector.epochDone(2, 24, 500), null, "printed once");
});

test("a resumed unit (no epoch 0 in this run) gives no projection rather than a wrong one", () => {
  const projector = new FirstEpochProjector(makeConfig("quick"), () => 0);
  projector.start([{ backbone: "scratch" }]);
  projector.unitStarted();
  assert.equal(projector.epochDone(1, 30, 100), null);
});

test("split sizes come from the batch files on disk, capped by the limits; CIFAR-10's official sizes when absent", () => {
  const dataDir = path.join(tmp, "data");
  writeSyntheticCifar10(path.join(dataDir, "synthetic"), { perTrainBatch: 30, testCount: 25 });
  const config = makeConfig("quick", { data: { source: "synthetic", dir: dataDir, trainLimit: 100, testLimit: null } });
  const s = splitSizes(config);
  assert.deepEqual([s.train, s.test], [100, 25]);
  assert.match(s.source, /^SYNTHETIC data in /);
  assert.equal(s.synthetic, true);
  const none = splitSizes(makeConfig("full", { data: { source: "cifar10", dir: path.join(tmp, "nothing") } }));
  assert.deepEqual([none.train, none.test], [50_000, 10_000]);
});

test("the probe's batch is the config's, capped by pixels on CPU engines only", () => {
  assert.equal(probeBatch(64, 32, false, SPEED_PROBE.cpuTrainBatchPixels), 64);
  assert.equal(probeBatch(64, 240, false, SPEED_PROBE.cpuTrainBatchPixels), Math.floor(SPEED_PROBE.cpuTrainBatchPixels / (240 * 240)));
  assert.equal(probeBatch(256, 240, false, SPEED_PROBE.cpuEvalBatchPixels), Math.floor(SPEED_PROBE.cpuEvalBatchPixels / (240 * 240)));
  assert.equal(probeBatch(64, 240, true, SPEED_PROBE.cpuTrainBatchPixels), 64);
  assert.equal(probeBatch(64, 1024, false, 10), 1);
});

test("--dry-run prints units, steps, a measured speed and the projection, and writes nothing", () => {
  const results = path.join(tmp, "results");
  const dataDir = path.join(tmp, "dry-data");
  const r = run(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "--preset", "smoke", "--dry-run", "--results", results, "--data-dir", dataDir]);
  assert.equal(r.status, 0, r.stderr);
  const smoke = PRESET_CONFIGS.smoke;
  const lines = r.stdout.split("\n");
  const line = (prefix: string): string => lines.find((l) => l.startsWith(prefix)) ?? assert.fail(`no "${prefix}" line in:\n${r.stdout}`);
  assert.match(line("backend: "), /^backend: (native CPU|pure JS|CUDA)/);
  const units = unitCounts(makeConfig("smoke"));
  assert.ok(line("units: ").startsWith(`units: ${units.selected} selected`));
  const trainImages = smoke.data.trainLimit as number;
  assert.ok(line("per unit: ").startsWith(`per unit: ${smoke.epochs} epoch(s) x ${Math.ceil(trainImages / smoke.trainBatch)} steps of batch ${smoke.trainBatch} = ${trainImages} training images per epoch; ${smoke.epochs + 1} evaluations of ${smoke.data.testLimit} test images`));
  const measured = line("measured: ").match(/training ([\d.]+) img\/s \((\d+) timed steps of batch (\d+)/);
  assert.ok(measured, line("measured: "));
  assert.ok(Number(measured[1]) > 0);
  assert.ok(Number(measured[2]) >= SPEED_PROBE.minTimedSteps && Number(measured[2]) <= SPEED_PROBE.timedSteps);
  assert.equal(Number(measured[3]), smoke.trainBatch);
  assert.match(line("projection: "), new RegExp(`selection ${units.selected} unit\\(s\\) ~\\S+; whole grid ${units.grid} unit\\(s\\) ~\\S+$`));
  assert.equal(fs.existsSync(results), false, "no results store");
  assert.equal(fs.existsSync(dataDir), false, "no generated data");
});
