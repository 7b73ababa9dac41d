// `--dry-run`'s short measured run: the config's model at its input size, trained by the real loop
// (train/loop.ts) on random images for a few warm-up steps and then ~20 timed steps, then one timed
// evaluation batch. Nothing touches the results store or the data folder; the images go through
// the same preprocessing (resize, crop, normalization) as a run's. SPEED_PROBE (config.ts) sets the
// step counts, the time budget and the batch caps that keep a CPU dry run of `full` in memory.
import * as tf from "@tensorflow/tfjs";
import { ExperimentConfig, SPEED_PROBE } from "../config";
import { ImageDataset } from "../data/batches";
import { IMAGE_BYTES } from "../data/cifar10";
import { BinaryClassifier } from "../model/head";
import { makeRng } from "../rng";
import { evaluate, trainLoop, TrainingStopped } from "../train/loop";
import { BackendInfo, initBackend } from "../engine/backend";
import { gpuMemoryOfProcess } from "../engine/machine_facts";

export interface SpeedSample {
  backend: BackendInfo;
  trainBatch: number;
  evalBatch: number;
  /** True when a batch was made smaller than the config's (CPU engines at large inputs). */
  capped: boolean;
  timedSteps: number;
  trainSeconds: number;
  trainImagesPerS: number;
  evalImagesPerS: number;
  /** Building the model, seconds. */
  setupS: number;
  peakRssGb: number;
  /** Bytes held in TF.js tensors after the run (all devices). */
  tensorMb: number;
  /** Device memory of this process (nvidia-smi) on a CUDA engine, else null. */
  gpuMemoryMiB: number | null;
}

/** The probe's batch: the config's, capped by pixels on engines without a GPU. */
export function probeBatch(wanted: number, crop: number, onGpu: boolean, maxPixels: number): number {
  return onGpu ? wanted : Math.max(1, Math.min(wanted, Math.floor(maxPixels / (crop * crop))));
}

/** `n` random 32x32 images with every tenth one positive, as a run's dataset would hand them out. */
function randomImages(config: ExperimentConfig, n: number, seed: string): ImageDataset {
  const rng = makeRng(config.seed, "speed-probe", seed);
  const images = new Uint8Array(n * IMAGE_BYTES);
  for (let i = 0; i < images.length; i++) images[i] = Math.floor(rng.next() * 256);
  const labels = Uint8Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 1 : 0));
  return new ImageDataset({ images, labels, n, files: [] }, Float32Array.from(labels), config.input);
}

export async function measureSpeed(config: ExperimentConfig, probe = SPEED_PROBE): Promise<SpeedSample> {
  const backend = await initBackend();
  const onGpu = backend.kind === "cuda";
  const trainBatch = probeBatch(config.trainBatch, config.input.crop, onGpu, probe.cpuTrainBatchPixels);
  const evalBatch = probeBatch(config.testBatch, config.input.crop, onGpu, probe.cpuEvalBatchPixels);
  const steps = probe.warmupSteps + probe.timedSteps;
  const train = randomImages(config, (steps + 1) * trainBatch, "train");
  const test = randomImages(config, evalBatch, "test");

  const t0 = performance.now();
  const model = new BinaryClassifier(config.model, makeRng(config.seed, "speed-probe", "init"));
  const setupS = (performance.now() - t0) / 1000;
  let done = 0;
  let warmEnd = 0;
  let lastStep = 0;
  const timed = (): number => done - probe.warmupSteps;
  try {
    // Epoch 0's evaluation (one batch) warms the evaluation path up; then the training steps.
    await trainLoop(model, train, test, { ...config, epochs: 1, trainBatch, testBatch: evalBatch }, {
      onStep: () => {
        done++;
        lastStep = performance.now();
        if (done === probe.warmupSteps) warmEnd = lastStep;
      },
      shouldStop: () => done >= steps ||
        (timed() >= probe.minTimedSteps && (performance.now() - warmEnd) / 1000 > probe.maxSeconds),
    });
  } catch (e) {
    if (!(e instanceof TrainingStopped)) {
      model.dispose();
      throw e;
    }
  }
  const trainSeconds = (lastStep - warmEnd) / 1000;
  const t1 = performance.now();
  evaluate(model, test, evalBatch, config.evalMode, makeRng(config.seed, "speed-probe", "eval"));
  const evalSeconds = (performance.now() - t1) / 1000;
  const sample: SpeedSample = {
    backend, trainBatch, evalBatch, capped: trainBatch < config.trainBatch || evalBatch < config.testBatch,
    timedSteps: timed(), trainSeconds, trainImagesPerS: (timed() * trainBatch) / trainSeconds,
    evalImagesPerS: evalBatch / evalSeconds, setupS,
    peakRssGb: process.resourceUsage().maxRSS / 2 ** 20,
    tensorMb: tf.memory().numBytes / 2 ** 20,
    gpuMemoryMiB: onGpu ? gpuMemoryOfProcess() : null,
  };
  model.dispose();
  return sample;
}
