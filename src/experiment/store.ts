// The results store: the single source of truth for every number the notebooks show.
//
// results/<config hash>/
//   config.json                         the resolved config and dataset the hash stands for
//   <backbone>__<arm>__trial-<k>/
//     epochs.jsonl                      one EpochRecord per finished epoch (0 = before training)
//     steps.jsonl                       per-step train loss over the first epoch (the hockey stick)
//     status.json                       running | done | failed | unavailable, with a message
//     checkpoint-<epoch>.bin/.json      weights + optimizer slots after the last finished epoch
//
// Every file is written to a temporary name and renamed into place, so a kill at any moment leaves
// either the old or the new version. The checkpoint of epoch e is written before epochs.jsonl lists
// e, and the previous checkpoint is deleted only after, so a resume always finds a matching pair.
import * as fs from "fs";
import * as path from "path";
import type { Arm, Backbone } from "../config";
import type { EpochRecord, StepRecord } from "./records";

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

/** The unit as people read it: `scratch/vanilla trial 0`. */
export function unitLabel(u: UnitKey): string {
  return `${u.backbone}/${u.arm} trial ${u.trial}`;
}

/** Writes `data` to `file` atomically (temporary file in the same folder, then rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

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
    if (!fs.existsSync(file)) writeFileAtomic(file, JSON.stringify(config, null, 2) + "\n");
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

  steps(u: UnitKey): StepRecord[] {
    return readJsonl<StepRecord>(path.join(this.unitDir(u), "steps.jsonl"));
  }

  status(u: UnitKey): UnitStatus | null {
    const file = path.join(this.unitDir(u), "status.json");
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as UnitStatus) : null;
  }

  setStatus(u: UnitKey, state: UnitState, message: string | null = null): void {
    fs.mkdirSync(this.unitDir(u), { recursive: true });
    const status: UnitStatus = { state, message, updated: new Date().toISOString() };
    writeFileAtomic(path.join(this.unitDir(u), "status.json"), JSON.stringify(status) + "\n");
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
    if (steps) writeFileAtomic(path.join(dir, "steps.jsonl"), steps.map((s) => JSON.stringify(s)).join("\n") + "\n");
    writeFileAtomic(path.join(dir, "epochs.jsonl"), [...previous, record].map((r) => JSON.stringify(r)).join("\n") + "\n");
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

function removeCheckpoint(dir: string, epoch: number): void {
  for (const ext of ["json", "bin"]) fs.rmSync(path.join(dir, `checkpoint-${epoch}.${ext}`), { force: true });
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
  writeFileAtomic(path.join(dir, `checkpoint-${c.epoch}.bin`), Buffer.concat(parts));
  writeFileAtomic(path.join(dir, `checkpoint-${c.epoch}.json`), JSON.stringify({ epoch: c.epoch, bytes: offset, arrays: index }));
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
