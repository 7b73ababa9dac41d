// The runner's single entry to the data layer: resolve the source, load the splits, build the
// binary labels and measure the positive rate. "auto" uses CIFAR-10 when it is on disk and says so
// loudly when it falls back to the synthetic stand-in.
import * as fs from "fs";
import * as path from "path";
import type { DatasetKind, ExperimentConfig } from "../config";
import { BATCH_DIR_NAME, DataError, howToGetCifar10, LabelledImages, batchDirProblem, loadCifar10 } from "./cifar10";
import { SyntheticOptions, ensureSynthetic, isSynthetic, syntheticImagesToGenerate } from "./synthetic";
import { PositiveClass, positiveRate, resolvePositiveClass, toBinaryLabels } from "./task";


export interface PreparedData {
  train: LabelledImages;
  test: LabelledImages;
  dataset: DatasetKind;
  positive: PositiveClass;
  /** Measured on the training labels: what the positive-rate bias init uses. */
  positiveRate: number;
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
}

/**
 * Which data set a config will use, without loading anything: "auto" is CIFAR-10 when
 * `<dir>/cifar-10-batches-bin` is complete (and not a copy of the synthetic set), else synthetic.
 */
export function resolveDataSource(data: ExperimentConfig["data"]): DatasetKind {
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

export function prepareData(data: ExperimentConfig["data"], opts: PrepareOptions = {}): PreparedData {
  const positive = resolvePositiveClass(data.positiveClass);
  const { dir, dataset, why } = resolveSource(data, opts);
  const { train, test } = loadCifar10(dir, { trainLimit: data.trainLimit, testLimit: data.testLimit });
  const trainLabels = toBinaryLabels(train.labels, positive.index);
  const testLabels = toBinaryLabels(test.labels, positive.index);
  requireBothClasses(trainLabels, "training", positive, dir);
  requireBothClasses(testLabels, "test", positive, dir);
  const rate = positiveRate(trainLabels);
  const note = `${why}: ${train.n} train${limitNote("train", train.n, data.trainLimit)} / ${test.n} test` +
    `${limitNote("test", test.n, data.testLimit)} images; positive class ${positive.index} "${positive.name}", ` +
    `measured train positive rate ${rate.toFixed(4)}`;
  return { train, test, dataset, positive, positiveRate: rate, trainLabels, testLabels, dir, note };
}
