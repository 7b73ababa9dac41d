// The CLI's `--dry-run`: what a run would do (units, steps and images per unit) and, from a short
// measured run on this machine (speed_probe.ts), what it would cost: img/s, peak memory and the
// projected wall time of the selection and of the whole grid. Reads the results store to say what
// is already done; writes nothing, neither to the store nor to the data folder.
import * as fs from "fs";
import * as path from "path";
import { ExperimentConfig, SPEED_PROBE } from "../config";
import { BATCH_DIR_NAME, RECORD_BYTES, TEST_BATCH_FILE, TRAIN_BATCH_FILES, batchDirProblem } from "../data/cifar10";
import { resolveDataSource } from "../data/prepare";
import { SYNTHETIC_DIR_NAME } from "../data/synthetic";
import { gridUnits, storeFor, unitNeedsTraining } from "./grid";
import { measureSpeed, SpeedSample } from "./speed_probe";
import { backboneCanRun, project, projectionText, unitCounts, UnitCost } from "./projection";

/** CIFAR-10's official split sizes: 5 training files and one test file of 10,000 records each. */
const CIFAR10_RECORDS_PER_FILE = 10_000;

export interface SplitSizes {
  train: number;
  test: number;
  /** Where the sizes come from. */
  source: string;
  /** True when these are not CIFAR-10's (the synthetic stand-in is on disk instead). */
  synthetic: boolean;
}

const limit = (n: number, cap: number | null): number => (cap === null ? n : Math.min(n, cap));

/** CIFAR-10's sizes under the config's limits. */
export function cifar10Sizes(config: ExperimentConfig): SplitSizes {
  return { train: limit(TRAIN_BATCH_FILES.length * CIFAR10_RECORDS_PER_FILE, config.data.trainLimit),
    test: limit(CIFAR10_RECORDS_PER_FILE, config.data.testLimit), source: "CIFAR-10's official sizes", synthetic: false };
}

/** Training and test images a run of `config` would use, from the batch files' sizes (nothing is read). */
export function splitSizes(config: ExperimentConfig): SplitSizes {
  const dataset = resolveDataSource(config.data);
  const dir = dataset === "cifar10" ? path.join(config.data.dir, BATCH_DIR_NAME) : path.join(config.data.dir, SYNTHETIC_DIR_NAME, BATCH_DIR_NAME);
  const records = (name: string): number => fs.statSync(path.join(dir, name)).size / RECORD_BYTES;
  if (batchDirProblem(dir) !== null) return { ...cifar10Sizes(config), source: `${dir} not generated yet: CIFAR-10's official sizes` };
  return {
    train: limit(TRAIN_BATCH_FILES.reduce((n, f) => n + records(f), 0), config.data.trainLimit),
    test: limit(records(TEST_BATCH_FILE), config.data.testLimit),
    source: `${dataset === "cifar10" ? "CIFAR-10" : "SYNTHETIC data"} in ${dir}`, synthetic: dataset !== "cifar10",
  };
}

/** Units the store does not hold finished (the run would train these). */
function unitsToRun(config: ExperimentConfig, resultsDir: string): number {
  const { store } = storeFor(config, resultsDir);
  return gridUnits(config).filter((u) => backboneCanRun(config, u.backbone) && unitNeedsTraining(store, config, u)).length;
}

export function dryRunCost(sizes: SplitSizes, s: SpeedSample): UnitCost {
  return { trainEpochS: sizes.train / s.trainImagesPerS, evalS: sizes.test / s.evalImagesPerS, setupS: s.setupS };
}

function measuredText(s: SpeedSample): string {
  const gpu = s.gpuMemoryMiB === null ? "" : `, GPU memory ${s.gpuMemoryMiB} MiB (nvidia-smi)`;
  return `measured: training ${s.trainImagesPerS.toFixed(1)} img/s (${s.timedSteps} timed steps of batch ${s.trainBatch} in ${s.trainSeconds.toFixed(1)} s), ` +
    `evaluation ${s.evalImagesPerS.toFixed(1)} img/s (one batch of ${s.evalBatch}), model build ${s.setupS.toFixed(1)} s; ` +
    `peak RSS ${s.peakRssGb.toFixed(2)} GB, tensors ${s.tensorMb.toFixed(0)} MB${gpu}` +
    (s.capped ? "\n  (batches capped on this CPU engine so that the probe fits in memory: SPEED_PROBE in src/config.ts; rates are per image)" : "");
}

/** Prints the plan, measures, prints the projection; returns the lines printed. */
export async function dryRun(config: ExperimentConfig, resultsDir: string, print: (line: string) => void = console.log): Promise<string[]> {
  const lines: string[] = [];
  const say = (line: string): void => {
    lines.push(line);
    print(line);
  };
  const sizes = splitSizes(config);
  const counts = unitCounts(config, unitsToRun(config, resultsDir));
  const steps = Math.ceil(sizes.train / config.trainBatch);
  say(`dry run: nothing is trained for real and nothing is written to ${resultsDir}/`);
  say(`units: ${counts.selected} selected (${config.backbones.join(", ")} x ${config.arms.join(", ")} x ${config.trials} trial(s)), ` +
    `${counts.toRun} not finished in the store; whole grid: ${counts.grid}`);
  say(`per unit: ${config.epochs} epoch(s) x ${steps} steps of batch ${config.trainBatch} = ${sizes.train.toLocaleString("en-US")} training images per epoch; ` +
    `${config.epochs + 1} evaluations of ${sizes.test.toLocaleString("en-US")} test images (${sizes.source})`);
  say(`measuring on this machine: ${config.model} at ${config.input.crop}x${config.input.crop}, ${SPEED_PROBE.warmupSteps} warm-up steps, then up to ${SPEED_PROBE.timedSteps} timed training steps and one evaluation batch...`);
  const sample = await measureSpeed(config);
  say(measuredText(sample));
  const cost = dryRunCost(sizes, sample);
  say(`projection: ${projectionText(project(cost, config.epochs, counts), cost, sample.trainImagesPerS)}`);
  const cifar = cifar10Sizes(config);
  if (sizes.synthetic && (cifar.train !== sizes.train || cifar.test !== sizes.test)) {
    const real = dryRunCost(cifar, sample);
    say(`with CIFAR-10 instead (make data; ${cifar.train.toLocaleString("en-US")} / ${cifar.test.toLocaleString("en-US")} images): ` +
      projectionText(project(real, config.epochs, counts), real, sample.trainImagesPerS));
  }
  return lines;
}
