// The runner's single entry to the data layer: resolve the source, load the splits, build the
// binary labels and measure the positive rate. "auto" uses CIFAR-10 when it is on disk and says so
// loudly when it falls back to the synthetic stand-in.
import * as fs from "fs";
import * as path from "path";
import type { DatasetKind, ExperimentConfig } from "../config";
import { BATCH_DIR_NAME, DataError, howToGetCifar10, LabelledImages, RECORD_BYTES, TEST_BATCH_FILE, batchDirProblem, loadCifar10 } from "./cifar10";
import { SyntheticOptions, ensureSynthetic, isSynthetic, syntheticImagesToGenerate } from "./synthetic";
import { PositiveClass, positiveRate, resolvePositiveClass, toBinaryLabels } from "./task";
import { selectImages, subsampleToRate } from "./subsample";
import { SWEEP } from "../config";


/** Images and positives of each split, as trained and evaluated on (after any subsampling). */
export interface SplitCounts {
  train: { images: number; positives: number };
  test: { images: number; positives: number };
}

export interface PreparedData {
  train: LabelledImages;
  test: LabelledImages;
  dataset: DatasetKind;
  positive: PositiveClass;
  /** Measured on the training labels: what the positive-rate bias init uses. */
  positiveRate: number;
  /** Measured on the test labels. */
  testPositiveRate: number;
  counts: SplitCounts;
  /** config.data.targetPositiveRate: the rate the positives were subsampled to (null: the data's own). */
  targetPositiveRate: number | null;
  trainLabels: Float32Array;
  testLabels: Float32Array;
  /** The batch folder the images came from. */
  dir: string;
  /** One human-readable line on what was loaded (and why, when it fell back to synthetic). */
  note: string;
}

export interface PrepareOptions {
  /** Sizes and seed of the synthetic set, when one is generated. */
  synthetic?: SyntheticOptions;
  /** The config's base seed: which positives a target positive rate keeps (required with one). */
  seed?: number;
}

/**
 * Which data set a config will use, without loading anything: "auto" is CIFAR-10 when
 * `<dir>/cifar-10-batches-bin` is complete (and not a copy of the synthetic set), else synthetic.
 */
export function resolveDataSource(data: Pick<ExperimentConfig["data"], "source" | "dir">): DatasetKind {
  if (data.source !== "auto") return data.source;
  const cifarDir = path.join(data.dir, BATCH_DIR_NAME);
  return batchDirProblem(cifarDir) === null && !isSynthetic(cifarDir) ? "cifar10" : "synthetic";
}

/** What prepareData(data) is about to do, in words, for a status line shown while it runs. */
export function preparationStep(data: ExperimentConfig["data"], opts: PrepareOptions = {}): string {
  if (resolveDataSource(data) === "cifar10") return `loading CIFAR-10 from ${data.dir}`;
  const n = syntheticImagesToGenerate(data.dir, opts.synthetic);
  return n > 0 ? `generating the synthetic stand-in (${n.toLocaleString("en-US")} images)` : "loading the synthetic stand-in";
}

function resolveSource(data: ExperimentConfig["data"], opts: PrepareOptions): { dir: string; dataset: DatasetKind; why: string } {
  const cifarDir = path.join(data.dir, BATCH_DIR_NAME);
  const problem = batchDirProblem(cifarDir);
  if (resolveDataSource(data) === "cifar10") {
    if (problem !== null) throw new DataError(`data.source "cifar10": CIFAR-10 is not usable (${problem}); to get it, ${howToGetCifar10(data.dir)}`);
    // An explicit "cifar10" pointing at a copy of the synthetic set keeps the synthetic label.
    const dataset: DatasetKind = isSynthetic(cifarDir) ? "synthetic" : "cifar10";
    return { dir: cifarDir, dataset, why: dataset === "cifar10" ? `CIFAR-10 from ${cifarDir}` : `SYNTHETIC data found at ${cifarDir}` };
  }
  const dir = ensureSynthetic(data.dir, opts.synthetic);
  if (data.source === "synthetic") return { dir, dataset: "synthetic", why: `SYNTHETIC stand-in (data.source "synthetic") from ${dir}` };
  const reason = problem === null ? `${cifarDir} holds a copy of the synthetic set`
    : fs.existsSync(cifarDir) ? `CIFAR-10 in ${data.dir}/ is incomplete (${problem})` : `CIFAR-10 not found in ${data.dir}/`;
  return { dir, dataset: "synthetic", why: `${reason} (run \`make data\`); using the SYNTHETIC stand-in from ${dir}` };
}

function limitNote(split: string, got: number, limit: number | null): string {
  return limit !== null && got < limit ? ` (${split} limit ${limit}, only ${got} available)` : "";
}

function requireBothClasses(labels: Float32Array, split: string, positive: PositiveClass, dir: string): void {
  const rate = positiveRate(labels);
  if (rate === 0 || rate === 1) {
    throw new DataError(`data.positiveClass: the ${split} images from ${dir} (${labels.length} of them) are all ${rate === 0 ? "negative" : "positive"} for ` +
      `class ${positive.index} "${positive.name}": a binary classifier needs both classes; use more images or another positive class`);
  }
}

/**
 * The smallest test limit that leaves `SWEEP.minTestPositives` positives at `rate`, if the first
 * images of the test file hold negatives in the share `negativeShare`; rounded up to hundreds.
 */
function testLimitFor(rate: number, negativeShare: number): number {
  const negatives = ((SWEEP.minTestPositives - 0.5) * (1 - rate)) / rate;
  return Math.ceil(negatives / negativeShare / 100) * 100;
}

/** Subsamples both splits to `rate` (src/data/subsample.ts); refuses a test set left with too few positives. */
function subsampleSplits(data: ExperimentConfig["data"], rate: number, seed: number, train: LabelledImages, test: LabelledImages,
  labels: { train: Float32Array; test: Float32Array }, testFileImages: number): { train: LabelledImages; test: LabelledImages; trainLabels: Float32Array; testLabels: Float32Array } {
  const trainSubset = subsampleToRate(labels.train, rate, seed, "train");
  const testSubset = subsampleToRate(labels.test, rate, seed, "test");
  if (testSubset.positives < SWEEP.minTestPositives) {
    const needed = testLimitFor(rate, testSubset.negatives / testSubset.ownImages);
    const more = data.testLimit === null || test.n < data.testLimit ? "the test file holds no more images: use a higher rate"
      : needed > testFileImages ? `it would take --test-limit ${needed}, more than the ${testFileImages} images the test file holds: use a higher rate`
        : `use more test images (--test-limit ${needed} or more) or a higher rate`;
    throw new DataError(`data.targetPositiveRate: ${rate} leaves ${testSubset.positives} positives among ${testSubset.keep.length} test images ` +
      `(fewer than ${SWEEP.minTestPositives}: too few for ROC-AUC and calibration); ${more}`);
  }
  const pick = (l: Float32Array, keep: Int32Array): Float32Array => Float32Array.from(keep, (i) => l[i]);
  return { train: selectImages(train, trainSubset.keep), test: selectImages(test, testSubset.keep),
    trainLabels: pick(labels.train, trainSubset.keep), testLabels: pick(labels.test, testSubset.keep) };
}

export function prepareData(data: ExperimentConfig["data"], opts: PrepareOptions = {}): PreparedData {
  const positive = resolvePositiveClass(data.positiveClass);
  const { dir, dataset, why } = resolveSource(data, opts);
  const loaded = loadCifar10(dir, { trainLimit: data.trainLimit, testLimit: data.testLimit });
  let { train, test } = loaded;
  let trainLabels = toBinaryLabels(train.labels, positive.index);
  let testLabels = toBinaryLabels(test.labels, positive.index);
  requireBothClasses(trainLabels, "training", positive, dir);
  requireBothClasses(testLabels, "test", positive, dir);
  const target = data.targetPositiveRate ?? null;
  if (target !== null) {
    if (opts.seed === undefined) throw new Error("prepareData: a target positive rate needs the config's seed (opts.seed)");
    ({ train, test, trainLabels, testLabels } = subsampleSplits(data, target, opts.seed, train, test, { train: trainLabels, test: testLabels },
      fs.statSync(path.join(dir, TEST_BATCH_FILE)).size / RECORD_BYTES));
  }
  const rate = positiveRate(trainLabels);
  const testRate = positiveRate(testLabels);
  const counts: SplitCounts = { train: { images: train.n, positives: Math.round(rate * train.n) }, test: { images: test.n, positives: Math.round(testRate * test.n) } };
  const subsampled = target === null ? "" : `; positives subsampled to target rate ${target} (all negatives kept): ` +
    `train ${counts.train.images} images, ${counts.train.positives} positive; test ${counts.test.images} images, ${counts.test.positives} positive`;
  const note = `${why}: ${loaded.train.n} train${limitNote("train", loaded.train.n, data.trainLimit)} / ${loaded.test.n} test` +
    `${limitNote("test", loaded.test.n, data.testLimit)} images; positive class ${positive.index} "${positive.name}"${subsampled}, ` +
    `measured train positive rate ${rate.toFixed(4)}${target === null ? "" : `, test ${testRate.toFixed(4)}`}`;
  return { train, test, dataset, positive, positiveRate: rate, testPositiveRate: testRate, counts, targetPositiveRate: target, trainLabels, testLabels, dir, note };
}
