// The results store: the single source of truth for every number the notebooks show.
//
// results/<config hash>/
//   config.json                         the resolved config and dataset the hash stands for
//   <backbone>__<arm>__trial-<k>/
//     epochs.jsonl                      one EpochRecord per finished epoch (0 = before training)
//     steps.jsonl                       per-step train loss over the first epoch (the hockey stick)
//     status.json                       running | done | failed | unavailable, with a message, the
//                                       NUMERICS_VERSION and the engine kind that wrote it
//     checkpoint-<epoch>.bin/.json      weights + optimizer slots after the last finished epoch
//     lock                              held while a process trains the unit (unit_lock.ts)
//
// Every file is written to a temporary name and renamed into place, so a kill at any moment leaves
// either the old or the new version. The checkpoint of epoch e is written before epochs.jsonl lists
// e, and the previous checkpoint is deleted only after, so a resume always finds a matching pair.
// What a kill leaves besides (temporary files, a checkpoint of an epoch not recorded, `running`
// after the last epoch, a lock) is cleaned by recoverUnit, run under the unit's lock.
// Each change on disk passes a named write point (write_points.ts), where the crash test kills.
import * as fs from "fs";
import * as path from "path";
import { ARMS, BACKBONES, NUMERICS_VERSION, type Arm, type Backbone } from "../config";
import type { EpochRecord, StepRecord } from "./records";
import { leftoverPid, removeLeftovers } from "../util/leftovers";
import { writeFileAtomic } from "../util/atomic_write";
import { AcquireResult, LockOwner, isStale, readLock, tryAcquire } from "./unit_lock";
import { passed, WritePoint } from "./write_points";

export interface UnitKey {
  backbone: Backbone;
  arm: Arm;
  trial: number;
}

export type UnitState = "running" | "done" | "failed" | "unavailable";

export interface UnitStatus {
  state: UnitState;
  message: string | null;
  updated: string;
  /** The NUMERICS_VERSION of the code that wrote it (absent in stores of older code). */
  numerics?: number;
  /** The engine kind (BackendInfo.kind) that wrote it, when known. */
  engine?: string;
}

/** One named array of a checkpoint (weights by torchvision key, optimizer slots by variable name). */
export interface NamedArray {
  name: string;
  dtype: "float32" | "int32";
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface Checkpoint {
  epoch: number;
  weights: NamedArray[];
  optimizer: NamedArray[];
}

/** The unit's folder name in the store. */
export function unitName(u: UnitKey): string {
  return `${u.backbone}__${u.arm}__trial-${u.trial}`;
}

/** unitName read back, for every backbone and arm (config's BACKBONES, ARMS); null for any other name. */
export function parseUnitName(name: string): UnitKey | null {
  const m = /^([a-z]+)__([a-z_]+)__trial-(\d+)$/.exec(name);
  if (m === null || !(BACKBONES as readonly string[]).includes(m[1]) || !(ARMS as readonly string[]).includes(m[2])) return null;
  return { backbone: m[1] as Backbone, arm: m[2] as Arm, trial: Number(m[3]) };
}

/** The unit as people read it: `scratch/vanilla trial 0`. */
export function unitLabel(u: UnitKey): string {
  return `${u.backbone}/${u.arm} trial ${u.trial}`;
}

type AtomicWrite = "config.json" | "status.json" | "checkpoint.bin" | "checkpoint.json" | "steps.jsonl" | "epochs.jsonl";

/** writeFileAtomic with the crash test's write points: `<point>.tmp` once the temporary file is written, `<point>` once renamed. */
function writeAtPoint(file: string, data: string | Uint8Array, point: AtomicWrite): void {
  writeFileAtomic(file, data, { written: () => passed(`${point}.tmp` as WritePoint), renamed: () => passed(point) });
}

/** The lock file of a unit folder. */
export const LOCK_FILE = "lock";

function readJsonl<T>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  const rows: T[] = [];
  fs.readFileSync(file, "utf8").split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      rows.push(JSON.parse(line) as T);
    } catch {
      throw new Error(`${file}:${i + 1}: not valid JSON (the results store is damaged; delete this unit's folder to rerun it)`);
    }
  });
  return rows;
}

export class ResultsStore {
  readonly dir: string;

  constructor(root: string, readonly hash: string) {
    this.dir = path.join(root, hash);
  }

  /** Creates the folder and records the config it stands for (once). */
  init(config: object): void {
    fs.mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, "config.json");
    if (!fs.existsSync(file)) writeAtPoint(file, JSON.stringify(config, null, 2) + "\n", "config.json");
  }

  /** Removes temporary files that dead writers left in the store's own folder (config.json's). */
  recoverStore(staleMs: number): string[] {
    return removeLeftovers(this.dir, staleMs);
  }

  /** What init() recorded (dataset, positive rate, ...), or null before the first run. */
  meta(): Record<string, unknown> | null {
    const file = path.join(this.dir, "config.json");
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : null;
  }

  unitDir(u: UnitKey): string {
    return path.join(this.dir, unitName(u));
  }

  epochs(u: UnitKey): EpochRecord[] {
    return readJsonl<EpochRecord>(path.join(this.unitDir(u), "epochs.jsonl"));
  }

  /** The last epoch recorded (0 is the evaluation before any step); -1 when none is. */
  lastEpoch(u: UnitKey): number {
    const records = this.epochs(u);
    return records.length === 0 ? -1 : records[records.length - 1].epoch;
  }

  steps(u: UnitKey): StepRecord[] {
    return readJsonl<StepRecord>(path.join(this.unitDir(u), "steps.jsonl"));
  }

  status(u: UnitKey): UnitStatus | null {
    const file = path.join(this.unitDir(u), "status.json");
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as UnitStatus) : null;
  }

  setStatus(u: UnitKey, state: UnitState, message: string | null = null, engine: string | null = null): void {
    fs.mkdirSync(this.unitDir(u), { recursive: true });
    const status: UnitStatus = { state, message, updated: new Date().toISOString(), numerics: NUMERICS_VERSION, ...(engine === null ? {} : { engine }) };
    writeAtPoint(path.join(this.unitDir(u), "status.json"), JSON.stringify(status) + "\n", "status.json");
  }

  /** Takes the unit's lock, or names the live process holding it (a stale lock is taken over). */
  tryLock(u: UnitKey, staleMs: number): AcquireResult {
    fs.mkdirSync(this.unitDir(u), { recursive: true });
    return tryAcquire(path.join(this.unitDir(u), LOCK_FILE), staleMs);
  }

  /** The live process holding the unit's lock, or null (no lock, or a stale one). */
  liveOwner(u: UnitKey, staleMs: number): LockOwner | null {
    const owner = readLock(path.join(this.unitDir(u), LOCK_FILE));
    return owner !== null && !isStale(owner, staleMs) ? owner : null;
  }

  /**
   * True when the unit's folder holds something a killed run left: a stale lock, temporary files
   * of dead writers, a checkpoint of an epoch that is not the last recorded one (or half of one),
   * or `running` after its last epoch. Read-only; a unit locked by a live process is not looked at.
   */
  needsRecovery(u: UnitKey, epochs: number, staleMs: number): boolean {
    const dir = this.unitDir(u);
    if (!fs.existsSync(dir)) return false;
    const lock = readLock(path.join(dir, LOCK_FILE));
    if (lock !== null) return isStale(lock, staleMs);
    const last = this.lastEpoch(u);
    const names = fs.readdirSync(dir);
    return names.some((f) => leftoverPid(f) !== null) || strayCheckpoints(names, last, epochs).length > 0 || needsMarkingDone(last, epochs, this.status(u)?.state);
  }

  /**
   * Cleans what a killed run left in the unit's folder; call it holding the unit's lock. Returns
   * one phrase per thing done (empty: nothing to do).
   */
  recoverUnit(u: UnitKey, epochs: number, staleMs: number): string[] {
    const dir = this.unitDir(u);
    const done: string[] = [];
    const removed = removeLeftovers(dir, staleMs);
    if (removed.length > 0) done.push(`removed ${removed.join(", ")}`);
    const last = this.lastEpoch(u);
    const stray = strayCheckpoints(fs.readdirSync(dir), last, epochs);
    for (const f of stray) {
      fs.rmSync(path.join(dir, f), { force: true });
      passed(f.endsWith(".json") ? "checkpoint.json-removed" : "checkpoint.bin-removed");
    }
    if (stray.length > 0) done.push(`removed ${stray.join(", ")}`);
    const state = this.status(u)?.state;
    if (needsMarkingDone(last, epochs, state)) {
      this.setStatus(u, "done", null, this.status(u)?.engine ?? null);
      done.push(`all ${epochs} epochs are recorded: marked done (was ${state ?? "without status"})`);
    }
    return done;
  }

  /**
   * Records a finished epoch: checkpoint first (if given), then the epoch list, then the older
   * checkpoint is removed. Epoch numbers must follow on from what is stored.
   */
  appendEpoch(u: UnitKey, record: EpochRecord, checkpoint: Checkpoint | null, steps: StepRecord[] | null): void {
    const dir = this.unitDir(u);
    fs.mkdirSync(dir, { recursive: true });
    const previous = this.epochs(u);
    const expected = previous.length === 0 ? 0 : previous[previous.length - 1].epoch + 1;
    if (record.epoch !== expected) throw new Error(`${dir}: epoch ${record.epoch} recorded after epoch ${expected - 1}`);
    if (checkpoint) writeCheckpoint(dir, checkpoint);
    if (steps) writeAtPoint(path.join(dir, "steps.jsonl"), steps.map((s) => JSON.stringify(s)).join("\n") + "\n", "steps.jsonl");
    writeAtPoint(path.join(dir, "epochs.jsonl"), [...previous, record].map((r) => JSON.stringify(r)).join("\n") + "\n", "epochs.jsonl");
    for (const old of listCheckpoints(dir)) if (old !== record.epoch) removeCheckpoint(dir, old);
  }

  /** The checkpoint matching the last recorded epoch, or null. */
  latestCheckpoint(u: UnitKey): Checkpoint | null {
    const records = this.epochs(u);
    if (records.length === 0) return null;
    const last = records[records.length - 1].epoch;
    return listCheckpoints(this.unitDir(u)).includes(last) ? readCheckpoint(this.unitDir(u), last) : null;
  }

  /** Checkpoints are only for resuming: a finished unit drops them (B1 + momentum is ~62 MB). */
  dropCheckpoints(u: UnitKey): void {
    for (const e of listCheckpoints(this.unitDir(u))) removeCheckpoint(this.unitDir(u), e);
  }
}

function listCheckpoints(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).flatMap((f) => {
    const m = /^checkpoint-(\d+)\.json$/.exec(f);
    return m && fs.existsSync(path.join(dir, `checkpoint-${m[1]}.bin`)) ? [Number(m[1])] : [];
  });
}

/** The index first, so that a kill in between leaves an incomplete pair, which is never read. */
function removeCheckpoint(dir: string, epoch: number): void {
  for (const ext of ["json", "bin"] as const) {
    const file = path.join(dir, `checkpoint-${epoch}.${ext}`);
    if (!fs.existsSync(file)) continue;
    fs.rmSync(file, { force: true });
    passed(`checkpoint.${ext}-removed`);
  }
}

/** Checkpoints a killed run left: all of them once every epoch is recorded, else those not of the last recorded epoch. */
function strayCheckpoints(names: string[], last: number, epochs: number): string[] {
  return names.filter((f) => /^checkpoint-\d+\.(bin|json)$/.test(f) && (last >= epochs || !f.startsWith(`checkpoint-${last}.`)));
}

/** Every epoch recorded, but the status says neither done nor failed (a kill before the status write). */
function needsMarkingDone(last: number, epochs: number, state: string | undefined): boolean {
  return last >= epochs && state !== "done" && state !== "failed";
}

interface CheckpointIndexEntry {
  group: "weights" | "optimizer";
  name: string;
  dtype: "float32" | "int32";
  shape: number[];
  offset: number;
  length: number;
}

/** Binary blob + JSON index; the index is renamed into place last, so it marks a complete pair. */
function writeCheckpoint(dir: string, c: Checkpoint): void {
  const index: CheckpointIndexEntry[] = [];
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [group, arrays] of [["weights", c.weights], ["optimizer", c.optimizer]] as const) {
    for (const a of arrays) {
      const bytes = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
      index.push({ group, name: a.name, dtype: a.dtype, shape: a.shape, offset, length: a.data.length });
      parts.push(bytes);
      offset += bytes.length;
    }
  }
  writeAtPoint(path.join(dir, `checkpoint-${c.epoch}.bin`), Buffer.concat(parts), "checkpoint.bin");
  writeAtPoint(path.join(dir, `checkpoint-${c.epoch}.json`), JSON.stringify({ epoch: c.epoch, bytes: offset, arrays: index }), "checkpoint.json");
}

function readCheckpoint(dir: string, epoch: number): Checkpoint {
  const indexFile = path.join(dir, `checkpoint-${epoch}.json`);
  const blobFile = path.join(dir, `checkpoint-${epoch}.bin`);
  const index = JSON.parse(fs.readFileSync(indexFile, "utf8")) as { bytes: number; arrays: CheckpointIndexEntry[] };
  const blob = fs.readFileSync(blobFile);
  if (blob.length !== index.bytes) throw new Error(`${blobFile}: ${blob.length} bytes, the index expects ${index.bytes} (damaged checkpoint)`);
  const result: Checkpoint = { epoch, weights: [], optimizer: [] };
  for (const e of index.arrays) {
    // Copy out so each array owns aligned memory independent of the file buffer.
    const raw = blob.subarray(e.offset, e.offset + e.length * 4);
    const copy = new Uint8Array(raw).buffer;
    const data = e.dtype === "int32" ? new Int32Array(copy) : new Float32Array(copy);
    result[e.group].push({ name: e.name, dtype: e.dtype, shape: e.shape, data });
  }
  return result;
}
