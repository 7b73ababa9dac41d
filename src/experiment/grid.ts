// The experiment grid: {ImageNet weights, scratch} x {vanilla, positive rate} x trials, each unit
// trained by train/loop.ts and written to the results store after every epoch.
//
// Pairing: trial k of both arms shares its seed, so both see the same data order, the same dropout
// masks and the same initial backbone and head weights; they differ only in the head's bias.
// Resuming: a unit restarts from its last finished epoch; a finished unit is read, never retrained.
import * as tf from "@tensorflow/tfjs";
import { ExperimentConfig, Arm, DatasetKind, configHash, resultKeyFields } from "../config";
import { initBackend, BackendInfo } from "../engine/backend";
import { deriveSeed, makeRng } from "../rng";
import { prepareData, resolveDataSource, PreparedData } from "../data/prepare";
import { ImageDataset } from "../data/batches";
import { BinaryClassifier } from "../model/head";
import { ensureImagenetWeights, IMAGENET_WEIGHTS, loadImagenetWeights, verifyCheckpointFits, WeightsUnavailableError } from "../model/pretrained";
import { trainLoop, TrainingDiverged, TrainingStopped, EpochMetrics, StepProgress } from "../train/loop";
import { ResultsStore, UnitKey, UnitStatus, NamedArray, Checkpoint } from "./store";
import type { EpochRecord, StepRecord } from "./records";

export type RunEvent =
  | { type: "start"; backend: BackendInfo; dataset: DatasetKind; note: string; hash: string; dir: string; positiveRate: number; pending: UnitKey[]; totalSteps: number }
  | { type: "unit-start"; unit: UnitKey; fromEpoch: number }
  | { type: "step"; unit: UnitKey; progress: StepProgress; stepsDone: number; totalSteps: number; stepsPerS: number; etaSeconds: number | null }
  | { type: "epoch"; unit: UnitKey; record: EpochRecord; numTensors: number }
  | { type: "unit-end"; unit: UnitKey; status: UnitStatus };

export interface RunOptions {
  /** Root of the results store (default "results"). */
  resultsDir?: string;
  onEvent?: (e: RunEvent) => void;
  /** Polled between steps; true stops after the step in flight (that epoch is redone on resume). */
  shouldStop?: () => boolean;
}

export interface UnitResult {
  unit: UnitKey;
  status: UnitStatus | null;
  epochs: number;
}

export interface ExperimentResult {
  config: ExperimentConfig;
  hash: string;
  dir: string;
  dataset: DatasetKind;
  /** Measured on the training labels when the store was created (null: nothing run yet). */
  positiveRate: number | null;
  /** How the data was chosen, e.g. why the synthetic stand-in is used. */
  note: string | null;
  records: EpochRecord[];
  steps: StepRecord[];
  units: UnitResult[];
  /** Units that could not run (e.g. ImageNet weights unavailable), with the reason. */
  unavailable: Array<{ unit: UnitKey; message: string }>;
  failed: Array<{ unit: UnitKey; message: string }>;
}

/** The units a config selects, trial-major so that a partial run holds complete pairs. */
export function gridUnits(config: ExperimentConfig): UnitKey[] {
  const units: UnitKey[] = [];
  for (const backbone of config.backbones)
    for (let trial = 0; trial < config.trials; trial++)
      for (const arm of config.arms) units.push({ backbone, arm, trial });
  return units;
}

/** Seed of trial k, shared by both arms (and by both backbones, which start differently anyway). */
export function trialSeed(config: ExperimentConfig, trial: number): number {
  return deriveSeed(config.seed, "trial", trial);
}

/** The store a config writes to: "auto" data is resolved first, so CIFAR-10 and synthetic never mix. */
export function storeFor(config: ExperimentConfig, resultsDir = "results"): { store: ResultsStore; dataset: DatasetKind; resolved: ExperimentConfig } {
  const dataset = resolveDataSource(config.data);
  const resolved: ExperimentConfig = { ...config, data: { ...config.data, source: dataset } };
  return { store: new ResultsStore(resultsDir, configHash(resolved)), dataset, resolved };
}

function isFinished(store: ResultsStore, unit: UnitKey, epochs: number): boolean {
  const status = store.status(unit);
  if (status?.state === "failed") return true;
  const records = store.epochs(unit);
  return records.length > 0 && records[records.length - 1].epoch >= epochs;
}

/** Reads what the store holds for the config's units; trains nothing, loads no data. */
export function loadResults(config: ExperimentConfig, resultsDir = "results"): ExperimentResult {
  const { store, dataset, resolved } = storeFor(config, resultsDir);
  const units = gridUnits(config);
  const meta = store.meta();
  const result: ExperimentResult = { config: resolved, hash: store.hash, dir: store.dir, dataset,
    positiveRate: typeof meta?.positiveRate === "number" ? meta.positiveRate : null,
    note: typeof meta?.note === "string" ? meta.note : null,
    records: [], steps: [], units: [], unavailable: [], failed: [] };
  for (const unit of units) {
    const status = store.status(unit);
    const epochs = store.epochs(unit).filter((r) => r.epoch <= config.epochs);
    result.records.push(...epochs);
    result.steps.push(...store.steps(unit));
    result.units.push({ unit, status, epochs: epochs.length });
    if (status?.state === "unavailable") result.unavailable.push({ unit, message: status.message ?? "" });
    if (status?.state === "failed") result.failed.push({ unit, message: status.message ?? "" });
  }
  return result;
}

/**
 * Runs every unit the config selects that the store does not already hold, then returns all of
 * them from the store. Bad config or data fails before anything is written.
 */
export async function runExperiment(config: ExperimentConfig, opts: RunOptions = {}): Promise<ExperimentResult> {
  const resultsDir = opts.resultsDir ?? "results";
  const { store, resolved } = storeFor(config, resultsDir);
  // Units whose weights were unavailable are tried again (the weights may have arrived since),
  // except where torchvision has no ImageNet weights for the architecture at all.
  const pending = gridUnits(config).filter((u) => !isFinished(store, u, config.epochs) &&
    !(store.status(u)?.state === "unavailable" && IMAGENET_WEIGHTS[config.model] === undefined));
  if (pending.length === 0) return loadResults(config, resultsDir);

  const backend = await initBackend();
  const data = prepareData(resolved.data);
  const train = new ImageDataset(data.train, data.trainLabels, resolved.input);
  const test = new ImageDataset(data.test, data.testLabels, resolved.input);
  const stepsPerEpoch = Math.ceil(train.size / resolved.trainBatch);
  // Epoch 0 is an evaluation only; a unit owes the training steps of its epochs not yet stored.
  const stepsOwed = (u: UnitKey): number => stepsPerEpoch * (resolved.epochs - Math.max(lastEpoch(store, u), 0));
  const totalSteps = pending.reduce((sum, u) => sum + stepsOwed(u), 0);
  // The ImageNet weights are fetched and checked before anything is written: a wrong local file
  // (checksum, or a state_dict that does not fit) stops the run here with one clear error, while
  // weights that cannot be had at all make those units "unavailable" below.
  if (pending.some((u) => u.backbone === "imagenet") && IMAGENET_WEIGHTS[resolved.model] !== undefined) {
    try {
      verifyCheckpointFits(await ensureImagenetWeights({ model: resolved.model }), resolved.model);
    } catch (e) {
      if (!(e instanceof WeightsUnavailableError)) throw e;
    }
  }
  store.init({ ...resultKeyFields(resolved), dataset: data.dataset, positiveClass: data.positive, positiveRate: data.positiveRate, note: data.note });
  opts.onEvent?.({ type: "start", backend, dataset: data.dataset, note: data.note, hash: store.hash, dir: store.dir, positiveRate: data.positiveRate, pending, totalSteps });

  // The rate counts trained steps over the time since the first one (skipped units take no time).
  let trained = 0;
  let skipped = 0;
  let started: number | null = null;
  for (const unit of pending) {
    const fromEpoch = lastEpoch(store, unit) + 1;
    opts.onEvent?.({ type: "unit-start", unit, fromEpoch });
    const owed = stepsOwed(unit);
    const trainedBefore = trained;
    const status = await runUnit(store, resolved, unit, data, train, test, backend, {
      onStep: (p) => {
        started ??= performance.now();
        trained++;
        // Timed from the first step's end, so the first step itself gives no rate yet.
        const rate = trained > 1 ? (trained - 1) / ((performance.now() - started) / 1000) : 0;
        opts.onEvent?.({ type: "step", unit, progress: p, stepsDone: trained + skipped, totalSteps, stepsPerS: rate,
          etaSeconds: rate > 0 ? (totalSteps - trained - skipped) / rate : null });
      },
      onEpoch: (record, numTensors) => opts.onEvent?.({ type: "epoch", unit, record, numTensors }),
      shouldStop: opts.shouldStop,
    });
    // A unit that ended early (diverged, weights unavailable) no longer owes its remaining steps.
    skipped += owed - (trained - trainedBefore);
    opts.onEvent?.({ type: "unit-end", unit, status });
  }
  return loadResults(config, resultsDir);
}

function lastEpoch(store: ResultsStore, unit: UnitKey): number {
  const records = store.epochs(unit);
  return records.length === 0 ? -1 : records[records.length - 1].epoch;
}

interface UnitCallbacks {
  onStep(p: StepProgress): void;
  onEpoch(r: EpochRecord, numTensors: number): void;
  shouldStop?: () => boolean;
}

/** Builds the unit's model (same weights for both arms of a trial) and trains it to the end. */
async function runUnit(store: ResultsStore, config: ExperimentConfig, unit: UnitKey, data: PreparedData,
  train: ImageDataset, test: ImageDataset, backend: BackendInfo, cb: UnitCallbacks): Promise<UnitStatus> {
  const seed = trialSeed(config, unit.trial);
  const model = new BinaryClassifier(config.model, makeRng(seed, "init"));
  try {
    if (unit.backbone === "imagenet") {
      try {
        await loadImagenetWeights(model, config.model);
      } catch (e) {
        if (!(e instanceof WeightsUnavailableError)) throw e;
        // Never fall back to training from scratch under the "imagenet" name.
        store.setStatus(unit, "unavailable", e.message);
        return store.status(unit) as UnitStatus;
      }
    }
    model.initHeadBias(unit.arm, data.positiveRate);
    const checkpoint = store.latestCheckpoint(unit);
    const previous = store.epochs(unit);
    if (previous.length > 0 && !checkpoint) throw new Error(`${store.unitDir(unit)}: epochs are recorded but their checkpoint is missing; delete the folder to rerun this unit`);
    if (checkpoint) model.setWeights(new Map(checkpoint.weights.map((a) => [a.name, a.data as Float32Array])));
    store.setStatus(unit, "running");
    const meta = { backbone: unit.backbone, arm: unit.arm as Arm, trial: unit.trial, seed, dataset: data.dataset, backend: backend.kind };
    await trainLoop(model, train, test, { ...config, seed }, {
      onStep: cb.onStep,
      shouldStop: cb.shouldStop,
      onEpoch: async (m: EpochMetrics, stepLosses, optimizer) => {
        const { num_tensors, ...metrics } = m;
        const record: EpochRecord = { ...meta, ...metrics };
        const last = m.epoch === config.epochs;
        const ckpt = last ? null : await makeCheckpoint(model, optimizer, m.epoch);
        const steps: StepRecord[] | null = stepLosses && stepLosses.map((loss, i) => ({ backbone: unit.backbone, arm: unit.arm, trial: unit.trial, epoch: 1, step: i + 1, loss }));
        store.appendEpoch(unit, record, ckpt, steps);
        cb.onEpoch(record, m.num_tensors);
      },
    }, checkpoint ? { epoch: checkpoint.epoch, optimizer: checkpoint.optimizer.map((a) => ({ name: a.name, tensor: tf.tensor(a.data, a.shape, a.dtype) })) } : null);
    store.dropCheckpoints(unit);
    store.setStatus(unit, "done");
  } catch (e) {
    if (e instanceof TrainingStopped) throw e;
    if (!(e instanceof TrainingDiverged)) throw e;
    store.setStatus(unit, "failed", e.message);
  } finally {
    model.dispose();
  }
  return store.status(unit) as UnitStatus;
}

async function makeCheckpoint(model: BinaryClassifier, optimizer: tf.Optimizer, epoch: number): Promise<Checkpoint> {
  const weights: NamedArray[] = [];
  for (const [name, v] of model.namedVariables()) weights.push({ name, dtype: "float32", shape: v.shape, data: v.dataSync() as Float32Array });
  const slots = await optimizer.getWeights();
  const optimizerArrays: NamedArray[] = slots.map((s) => ({
    name: s.name, dtype: s.tensor.dtype === "int32" ? "int32" : "float32", shape: s.tensor.shape, data: s.tensor.dataSync() as Float32Array | Int32Array,
  }));
  // The momentum buffers are the optimizer's own variables; only the iteration count is a fresh tensor.
  tf.dispose(slots.filter((s) => !(s.tensor instanceof tf.Variable)).map((s) => s.tensor));
  return { epoch, weights, optimizer: optimizerArrays };
}
