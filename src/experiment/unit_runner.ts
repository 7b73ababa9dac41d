// Trains one unit of the grid into the results store, under the unit's lock: builds its model
// (same weights for both arms of a trial), resumes from its last checkpoint, writes every epoch,
// and refreshes the lock's heartbeat as it goes. A unit is resumed only by the engine and code
// (NUMERICS_VERSION) that started it, unless the caller allows an engine change.
import * as tf from "@tensorflow/tfjs";
import { Arm, ExperimentConfig, NUMERICS_VERSION } from "../config";
import { UserError } from "../errors";
import type { BackendInfo } from "../engine/backend";
import { deriveSeed, makeRng } from "../rng";
import type { PreparedData } from "../data/prepare";
import type { ImageDataset } from "../data/batches";
import { BinaryClassifier } from "../model/head";
import { loadImagenetWeights, WeightsUnavailableError } from "../model/pretrained";
import { trainLoop, TrainingDiverged, TrainingStopped, EpochMetrics, StepProgress } from "../train/loop";
import { OptimizerState, OptimizerStateError } from "../train/optimizer";
import { Checkpoint, NamedArray, ResultsStore, UnitKey, UnitStatus, unitLabel } from "./store";
import type { UnitLock } from "./unit_lock";
import type { EpochRecord, StepRecord } from "./records";

/** Seed of trial k, shared by both arms (and by both backbones, which start differently anyway). */
export function trialSeed(config: ExperimentConfig, trial: number): number {
  return deriveSeed(config.seed, "trial", trial);
}

/** A unit recorded by another engine or code version than this run's. */
export class ResumeMismatchError extends UserError {
  override name = "ResumeMismatchError";
}

/** Another process took the unit's lock over (this one stalled past the stale timeout): stop writing to it. */
export class LockLostError extends Error {
  override name = "LockLostError";
}

const FORCE_NAME: Record<string, string> = { cuda: "cuda", "native-cpu": "native", js: "js" };

/**
 * Why this run may not continue a partly trained unit, or null: its epochs were written by
 * another NUMERICS_VERSION, or by another engine (unless `allowEngineChange`).
 */
export function resumeProblem(store: ResultsStore, unit: UnitKey, engine: string, allowEngineChange: boolean): string | null {
  const records = store.epochs(unit);
  if (records.length === 0) return null;
  const status = store.status(unit);
  const last = records[records.length - 1];
  const where = `${store.unitDir(unit)}`;
  if (status?.numerics !== undefined && status.numerics !== NUMERICS_VERSION) {
    return `${where}: recorded up to epoch ${last.epoch} by code of numerics version ${status.numerics}, this code is version ${NUMERICS_VERSION}; ` +
      "start fresh under a new results folder (--results DIR or BIAS_INIT_RESULTS) or delete that unit's folder";
  }
  const recorded = status?.engine ?? last.backend;
  if (recorded === engine || allowEngineChange) return null;
  return `${where}: trained on the ${recorded} engine up to epoch ${last.epoch}, this run's engine is ${engine}, and one unit must not mix engines; ` +
    `resume it on ${recorded} (BIAS_INIT_BACKEND=${FORCE_NAME[recorded] ?? recorded}), start fresh under a new results folder (--results DIR), ` +
    `or pass --allow-engine-change to continue on ${engine}`;
}

/** Throws ResumeMismatchError for the first of `units` that may not be resumed, naming how many more. */
export function checkResumable(store: ResultsStore, units: UnitKey[], engine: string, allowEngineChange: boolean): void {
  const problems = units.map((u) => resumeProblem(store, u, engine, allowEngineChange)).filter((p): p is string => p !== null);
  if (problems.length > 0) throw new ResumeMismatchError(problems[0] + (problems.length > 1 ? ` (and ${problems.length - 1} more unit(s) alike)` : ""));
}

export interface UnitCallbacks {
  onStep(p: StepProgress): void;
  onEpoch(r: EpochRecord, numTensors: number): void;
  shouldStop?: () => boolean;
}

export interface UnitContext {
  store: ResultsStore;
  config: ExperimentConfig;
  data: PreparedData;
  train: ImageDataset;
  test: ImageDataset;
  backend: BackendInfo;
  heartbeatMs: number;
}

/** Trains the unit to the end, holding `lock`; returns its final status. */
export async function runUnit(ctx: UnitContext, unit: UnitKey, lock: UnitLock, cb: UnitCallbacks): Promise<UnitStatus> {
  const { store, config, data, backend } = ctx;
  const seed = trialSeed(config, unit.trial);
  const beat = (everyMs: number): void => {
    if (!lock.heartbeat(everyMs)) throw new LockLostError(`${unitLabel(unit)}: another process took over this unit's lock; leaving the unit to it`);
  };
  // Steps and epochs refresh the heartbeat; the timer covers waits between them (weights loading).
  const timer = setInterval(() => lock.heartbeat(ctx.heartbeatMs), ctx.heartbeatMs);
  timer.unref();
  const model = new BinaryClassifier(config.model, makeRng(seed, "init"));
  try {
    if (unit.backbone === "imagenet") {
      try {
        await loadImagenetWeights(model, config.model);
      } catch (e) {
        if (!(e instanceof WeightsUnavailableError)) throw e;
        // Never fall back to training from scratch under the "imagenet" name.
        beat(0);
        store.setStatus(unit, "unavailable", e.message, backend.kind);
        return store.status(unit) as UnitStatus;
      }
    }
    model.initHeadBias(unit.arm, data.positiveRate);
    const checkpoint = store.latestCheckpoint(unit);
    const previous = store.epochs(unit);
    if (previous.length > 0 && !checkpoint) throw new Error(`${store.unitDir(unit)}: epochs are recorded but their checkpoint is missing; delete the folder to rerun this unit`);
    if (checkpoint) model.setWeights(new Map(checkpoint.weights.map((a) => [a.name, a.data as Float32Array])));
    beat(0);
    store.setStatus(unit, "running", null, backend.kind);
    // A sweep's records carry their target rate: it is part of their condition (records.ts).
    const rate = config.data.targetPositiveRate === null ? {} : { target_positive_rate: config.data.targetPositiveRate };
    const meta = { backbone: unit.backbone, ...rate, arm: unit.arm as Arm, trial: unit.trial, seed, dataset: data.dataset, backend: backend.kind };
    await trainLoop(model, ctx.train, ctx.test, { ...config, seed }, {
      onStep: (p) => {
        beat(ctx.heartbeatMs);
        cb.onStep(p);
      },
      shouldStop: cb.shouldStop,
      onEpoch: async (m: EpochMetrics, stepLosses, optimizerState) => {
        const { num_tensors, ...metrics } = m;
        const record: EpochRecord = { ...meta, ...metrics };
        const last = m.epoch === config.epochs;
        const ckpt = last ? null : makeCheckpoint(model, await optimizerState(), m.epoch);
        const steps: StepRecord[] | null = stepLosses && stepLosses.map((loss, i) => ({ backbone: unit.backbone, ...rate, arm: unit.arm, trial: unit.trial, epoch: 1, step: i + 1, loss }));
        beat(0); // the lock is still ours right before writing
        store.appendEpoch(unit, record, ckpt, steps);
        cb.onEpoch(record, m.num_tensors);
      },
    }, checkpoint ? { epoch: checkpoint.epoch, optimizer: checkpoint.optimizer.map((a) => ({ name: a.name, tensor: tf.tensor(a.data, a.shape, a.dtype) })) } : null);
    beat(0);
    store.dropCheckpoints(unit);
    store.setStatus(unit, "done", null, backend.kind);
  } catch (e) {
    if (e instanceof OptimizerStateError) throw new OptimizerStateError(`${store.unitDir(unit)}/checkpoint-${store.epochs(unit).slice(-1)[0]?.epoch}: ${e.message}`);
    if (e instanceof TrainingStopped || !(e instanceof TrainingDiverged)) throw e;
    beat(0);
    store.setStatus(unit, "failed", e.message, backend.kind);
  } finally {
    clearInterval(timer);
    model.dispose();
  }
  return store.status(unit) as UnitStatus;
}

/** Weights by state_dict key and the momentum buffers by the key of their variable (the loop's OptimizerState). */
function makeCheckpoint(model: BinaryClassifier, optimizer: OptimizerState, epoch: number): Checkpoint {
  const weights: NamedArray[] = [];
  for (const [name, v] of model.namedVariables()) weights.push({ name, dtype: "float32", shape: v.shape, data: v.dataSync() as Float32Array });
  const optimizerArrays: NamedArray[] = optimizer.map((s) => ({
    name: s.name, dtype: s.tensor.dtype === "int32" ? "int32" : "float32", shape: s.tensor.shape, data: s.tensor.dataSync() as Float32Array | Int32Array,
  }));
  return { epoch, weights, optimizer: optimizerArrays };
}
