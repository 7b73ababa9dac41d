// The experiment grid: {ImageNet weights, scratch} x {vanilla, positive rate} x trials, each unit
// trained by unit_runner.ts and written to the results store after every epoch.
//
// Pairing: trial k of both arms shares its seed, so both see the same data order, the same dropout
// masks and the same initial backbone and head weights; they differ only in the head's bias.
// Resuming: a unit restarts from its last finished epoch; a finished unit is read, never retrained.
// Sharing a store: each unit is trained under its lock (unit_lock.ts). A run skips units other
// processes are training, then waits at its end for those (and takes over any whose lock goes
// stale), so every unit is trained once. Start-up first cleans what killed runs left behind.
import * as fs from "fs";
import * as path from "path";
import { ExperimentConfig, DatasetKind, ConfigError, NUMERICS_VERSION, checkBatchSizes, lockSettings } from "../config";
import { canonicalJson, configHash, resultKeyFields } from "./result_key";
import { initBackend, BackendInfo } from "../engine/backend";
import { prepareData, resolveDataSource, SplitCounts } from "../data/prepare";
import { ImageDataset } from "../data/batches";
import { DEFAULT_WEIGHTS_DIR, ensureImagenetWeights, IMAGENET_WEIGHTS, verifyCheckpointFits, WeightsUnavailableError } from "../model/pretrained";
import { TrainingStopped, StepProgress } from "../train/loop";
import { removeLeftovers } from "../util/leftovers";
import { ResultsStore, UnitKey, UnitStatus, unitLabel } from "./store";
import { LockOwner } from "./unit_lock";
import { checkCrashHook } from "./write_points";
import { checkResumable, LockLostError, runUnit, trialSeed, UnitContext } from "./unit_runner";
import type { EpochRecord, StepRecord } from "./records";

export { trialSeed };

export type RunEvent =
  | { type: "start"; backend: BackendInfo; dataset: DatasetKind; note: string; hash: string; dir: string; positiveRate: number; counts: SplitCounts; pending: UnitKey[]; totalSteps: number }
  | { type: "unit-start"; unit: UnitKey; fromEpoch: number }
  | { type: "step"; unit: UnitKey; progress: StepProgress; stepsDone: number; totalSteps: number; stepsPerS: number; etaSeconds: number | null }
  | { type: "epoch"; unit: UnitKey; record: EpochRecord; numTensors: number }
  | { type: "unit-end"; unit: UnitKey; status: UnitStatus }
  /** What start-up cleaned in a unit a killed run left behind. */
  | { type: "recovered"; unit: UnitKey; actions: string[] }
  /** A unit another process is training: left to it for now. */
  | { type: "unit-skip"; unit: UnitKey; owner: LockOwner }
  /** This process lost a unit's lock to another (it had stalled past the stale timeout). */
  | { type: "lock-lost"; unit: UnitKey }
  /** At the end: waiting for units other processes are training (repeated every poll). */
  | { type: "waiting"; units: Array<{ unit: UnitKey; owner: LockOwner }>; waitedS: number; limitS: number }
  /** The wait bound passed with these units still locked by others. */
  | { type: "wait-timeout"; units: Array<{ unit: UnitKey; owner: LockOwner }>; waitedS: number }
  /** One line worth telling (e.g. results of older code left in another store). */
  | { type: "note"; text: string };

export interface RunOptions {
  /** Root of the results store (default "results"). */
  resultsDir?: string;
  onEvent?: (e: RunEvent) => void;
  /** Polled between steps; true stops after the step in flight (that epoch is redone on resume). */
  shouldStop?: () => boolean;
  /** Continue units started on another engine (CLI --allow-engine-change); default false. */
  allowEngineChange?: boolean;
  /** Wait at the end for units other processes are training (default true, bounded by BIAS_INIT_LOCK_WAIT_S). */
  waitForOthers?: boolean;
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
  /** Measured on the test labels, and the images and positives of each split (null: nothing run yet, or a store of older code). */
  testPositiveRate: number | null;
  counts: SplitCounts | null;
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

/** The store a config writes to: "auto" data is resolved first, so CIFAR-10 and synthetic never mix. */
export function storeFor(config: ExperimentConfig, resultsDir = "results"): { store: ResultsStore; dataset: DatasetKind; resolved: ExperimentConfig } {
  const dataset = resolveDataSource(config.data);
  const resolved: ExperimentConfig = { ...config, data: { ...config.data, source: dataset } };
  return { store: new ResultsStore(resultsDir, configHash(resolved)), dataset, resolved };
}

function isFinished(store: ResultsStore, unit: UnitKey, epochs: number): boolean {
  return store.status(unit)?.state === "failed" || store.lastEpoch(unit) >= epochs;
}

/**
 * A unit the store does not hold finished. Units whose weights were unavailable are tried again
 * (the weights may have arrived since), except where torchvision has no ImageNet weights for the
 * architecture at all.
 */
export function unitNeedsTraining(store: ResultsStore, config: ExperimentConfig, u: UnitKey): boolean {
  return !isFinished(store, u, config.epochs) && !(store.status(u)?.state === "unavailable" && IMAGENET_WEIGHTS[config.model] === undefined);
}

/** The full preset never falls back to the synthetic stand-in silently. */
export function refuseUnintendedSynthetic(config: ExperimentConfig, dataset: DatasetKind): void {
  if (config.preset === "full" && config.data.source === "auto" && dataset === "synthetic") {
    throw new ConfigError(`config.data.source: the full preset found no CIFAR-10 in ${config.data.dir}/ and would train on the synthetic stand-in; ` +
      "run `make data`, or pass --data synthetic to run it on synthetic data on purpose");
  }
}

/** Reads what the store holds for the config's units; trains nothing, loads no data. */
export function loadResults(config: ExperimentConfig, resultsDir = "results"): ExperimentResult {
  const { store, dataset, resolved } = storeFor(config, resultsDir);
  const units = gridUnits(config);
  const meta = store.meta();
  const result: ExperimentResult = { config: resolved, hash: store.hash, dir: store.dir, dataset,
    positiveRate: typeof meta?.positiveRate === "number" ? meta.positiveRate : null,
    testPositiveRate: typeof meta?.testPositiveRate === "number" ? meta.testPositiveRate : null,
    counts: typeof meta?.counts === "object" && meta.counts !== null ? meta.counts as SplitCounts : null,
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

/** Stores under the same root holding this config's results from code of another NUMERICS_VERSION. */
function storesOfOtherCode(resultsDir: string, resolved: ExperimentConfig, own: string): Array<{ dir: string; version: unknown }> {
  const { numericsVersion: _n, ...ours } = resultKeyFields(resolved) as Record<string, unknown>;
  const found: Array<{ dir: string; version: unknown }> = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(resultsDir);
  } catch {
    return found;
  }
  for (const name of names) {
    const dir = path.join(resultsDir, name);
    if (dir === own) continue;
    try {
      const meta = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;
      const theirs = Object.fromEntries(Object.keys(ours).map((k) => [k, meta[k]]));
      if (canonicalJson(theirs) === canonicalJson(ours)) found.push({ dir, version: meta.numericsVersion ?? "none (older code)" });
    } catch {
      // not a store
    }
  }
  return found;
}

/**
 * Runs every unit the config selects that the store does not already hold, then returns all of
 * them from the store. Bad config or data fails before anything is written.
 */
export async function runExperiment(config: ExperimentConfig, opts: RunOptions = {}): Promise<ExperimentResult> {
  const resultsDir = opts.resultsDir ?? "results";
  const emit = (e: RunEvent): void => opts.onEvent?.(e);
  checkCrashHook();
  const locks = lockSettings();
  const { store, dataset, resolved } = storeFor(config, resultsDir);
  refuseUnintendedSynthetic(config, dataset);
  const units = gridUnits(config);
  const needsTraining = (u: UnitKey): boolean => unitNeedsTraining(store, config, u);
  const pending = units.filter(needsTraining);
  if (pending.length === 0) {
    recoverUnits(store, units, config.epochs, locks.staleMs, emit);
    return loadResults(config, resultsDir);
  }

  const backend = await initBackend();
  // Units other processes are training now are theirs to judge; the rest are checked before any write.
  checkResumable(store, pending.filter((u) => store.liveOwner(u, locks.staleMs) === null), backend.kind, opts.allowEngineChange === true);
  const data = prepareData(resolved.data, { seed: resolved.seed });
  checkBatchSizes(resolved, data.train.n, data.test.n);
  const train = new ImageDataset(data.train, data.trainLabels, resolved.input);
  const test = new ImageDataset(data.test, data.testLabels, resolved.input);
  const stepsPerEpoch = Math.ceil(train.size / resolved.trainBatch);
  // Epoch 0 is an evaluation only; a unit owes the training steps of its epochs not yet stored.
  const stepsOwed = (u: UnitKey): number => stepsPerEpoch * (resolved.epochs - Math.max(store.lastEpoch(u), 0));
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
  // Start-up recovery: leftovers of killed processes in the data and weights folders and the store.
  for (const dir of [resolved.data.dir, DEFAULT_WEIGHTS_DIR]) removeLeftovers(dir, locks.staleMs);
  const fresh = store.meta() === null;
  store.init({ ...resultKeyFields(resolved), dataset: data.dataset, positiveClass: data.positive, positiveRate: data.positiveRate,
    testPositiveRate: data.testPositiveRate, counts: data.counts, note: data.note });
  emit({ type: "start", backend, dataset: data.dataset, note: data.note, hash: store.hash, dir: store.dir, positiveRate: data.positiveRate, counts: data.counts, pending, totalSteps });
  if (fresh) {
    for (const other of storesOfOtherCode(resultsDir, resolved, store.dir)) {
      emit({ type: "note", text: `${other.dir} holds this config's results from code of numerics version ${other.version}; this code is version ${NUMERICS_VERSION}, so this run starts fresh in ${store.dir}` });
    }
  }
  store.recoverStore(locks.staleMs);
  recoverUnits(store, units, config.epochs, locks.staleMs, emit);

  const ctx: UnitContext = { store, config: resolved, data, train, test, backend, heartbeatMs: locks.heartbeatMs };
  // The rate counts trained steps over the time since the first one (skipped units take no time).
  let trained = 0;
  let skipped = 0;
  let started: number | null = null;
  const skippedOnce = new Set<string>();
  const trainUnit = async (unit: UnitKey, lock: Parameters<typeof runUnit>[2]): Promise<void> => {
    const fromEpoch = store.lastEpoch(unit) + 1;
    emit({ type: "unit-start", unit, fromEpoch });
    const owed = stepsOwed(unit);
    if (skippedOnce.has(unitLabel(unit))) skipped -= owed; // counted as done by another process when skipped
    const trainedBefore = trained;
    try {
      const status = await runUnit(ctx, unit, lock, {
        onStep: (p) => {
          started ??= performance.now();
          trained++;
          // Timed from the first step's end, so the first step itself gives no rate yet.
          const rate = trained > 1 ? (trained - 1) / ((performance.now() - started) / 1000) : 0;
          emit({ type: "step", unit, progress: p, stepsDone: trained + skipped, totalSteps, stepsPerS: rate,
            etaSeconds: rate > 0 ? (totalSteps - trained - skipped) / rate : null });
        },
        onEpoch: (record, numTensors) => emit({ type: "epoch", unit, record, numTensors }),
        shouldStop: opts.shouldStop,
      });
      emit({ type: "unit-end", unit, status });
    } finally {
      // A unit that ended early (diverged, weights unavailable, lost) no longer owes its remaining steps.
      skipped += owed - (trained - trainedBefore);
    }
  };

  // Each round takes every free unit; units locked by others wait for the next round.
  let queue = pending;
  const waitStart = Date.now();
  for (;;) {
    const busy: Array<{ unit: UnitKey; owner: LockOwner }> = [];
    for (const unit of queue) {
      const attempt = store.tryLock(unit, locks.staleMs);
      if (attempt.owner) {
        busy.push({ unit, owner: attempt.owner });
        if (!skippedOnce.has(unitLabel(unit))) {
          emit({ type: "unit-skip", unit, owner: attempt.owner });
          skippedOnce.add(unitLabel(unit));
          skipped += stepsOwed(unit);
        }
        continue;
      }
      try {
        const actions = store.recoverUnit(unit, config.epochs, locks.staleMs);
        if (actions.length > 0) emit({ type: "recovered", unit, actions });
        if (!needsTraining(unit)) continue; // another process finished it meanwhile
        checkResumable(store, [unit], backend.kind, opts.allowEngineChange === true);
        await trainUnit(unit, attempt.lock);
      } catch (e) {
        if (!(e instanceof LockLostError)) throw e;
        emit({ type: "lock-lost", unit });
      } finally {
        attempt.lock.release();
      }
    }
    queue = busy.map((b) => b.unit).filter(needsTraining);
    const waiting = busy.filter((b) => queue.includes(b.unit));
    if (waiting.length === 0 || opts.waitForOthers === false) break;
    const waitedS = (Date.now() - waitStart) / 1000;
    if (waitedS * 1000 >= locks.waitMs) {
      emit({ type: "wait-timeout", units: waiting, waitedS });
      break;
    }
    emit({ type: "waiting", units: waiting, waitedS, limitS: locks.waitMs / 1000 });
    await sleepUnless(Math.min(locks.pollMs, Math.max(0, locks.waitMs - waitedS * 1000)), opts.shouldStop);
  }
  return loadResults(config, resultsDir);
}

/** Sleeps `ms`, checking `shouldStop` every 100 ms; throws TrainingStopped when it says stop. */
async function sleepUnless(ms: number, shouldStop?: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (shouldStop?.()) throw new TrainingStopped("stopped while waiting for units other processes are training");
    const left = end - Date.now();
    if (left <= 0) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, left)));
  }
}

/** Start-up recovery of every selected unit a killed run left something in (units others hold are left alone). */
function recoverUnits(store: ResultsStore, units: UnitKey[], epochs: number, staleMs: number, emit: (e: RunEvent) => void): void {
  for (const unit of units) {
    if (!store.needsRecovery(unit, epochs, staleMs)) continue;
    const attempt = store.tryLock(unit, staleMs);
    if (attempt.owner) continue;
    try {
      const actions = store.recoverUnit(unit, epochs, staleMs);
      if (actions.length > 0) emit({ type: "recovered", unit, actions });
    } finally {
      attempt.lock.release();
    }
  }
}

