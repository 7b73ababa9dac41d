// The event log of one worker: `<results>/workers/<host>-<pid>.jsonl`, one JSON line per event
// (hello with its configs, unit start/end, a step now and then, each finished epoch with its record,
// the lines worth telling, and an exit line). Workers write it; whoever shows their progress (the
// `--workers` parent, a notebook attached to detached workers, `--attach`) reads it back, so the
// same view works for children, for detached processes and for Slurm tasks on a shared store.
// Appends of one short line are atomic on local file systems; a reader keeps a partial last line
// for its next read.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ExperimentConfig, WORKERS } from "../config";
import type { RunEvent } from "./grid";
import { formatStoreEvent } from "./progress";
import type { EpochRecord } from "./records";
import type { UnitKey, UnitState } from "./store";
import { ownerGone } from "./unit_lock";

export interface WorkerHello {
  type: "hello";
  t: number;
  pid: number;
  host: string;
  /** ISO time the process started its log (to tell a reused pid). */
  started: string;
  /** CUDA_VISIBLE_DEVICES as the worker saw it (null: unset). */
  gpu: string | null;
  /** TF_NUM_INTRAOP_THREADS as the worker saw it (null: unset, TensorFlow's default). */
  threads?: string | null;
  /** node's flags and the file it runs: src/cli.ts under tsx, or its compiled bundle (tools/run-ts.sh). */
  node?: string[];
  /** The configs it runs (data source resolved) and their store folders (config hashes), in order. */
  configs: ExperimentConfig[];
  stores: string[];
}

export type WorkerLine =
  | WorkerHello
  | { type: "start"; t: number; store: string; engine: string; dataset: string; pending: number }
  | { type: "unit-start"; t: number; store: string; unit: UnitKey; fromEpoch: number }
  | { type: "step"; t: number; store: string; unit: UnitKey; epoch: number; step: number; steps: number; stepsPerS: number }
  | { type: "epoch"; t: number; store: string; unit: UnitKey; record: EpochRecord }
  | { type: "unit-end"; t: number; store: string; unit: UnitKey; state: UnitState; message: string | null }
  /** A line of the run's own reporter worth showing (skips, recoveries, waiting, notes). */
  | { type: "say"; t: number; kind: RunEvent["type"]; text: string }
  | { type: "exit"; t: number; code: number; error: string | null };

/** `<results>/workers`. */
export function workersDir(resultsDir: string): string {
  return path.join(resultsDir, WORKERS.folder);
}

/** The log of the worker process `pid` on this host: `<results>/workers/<host>-<pid>.jsonl`. */
export function workerLogFile(resultsDir: string, pid: number = process.pid): string {
  return path.join(workersDir(resultsDir), `${os.hostname()}-${pid}.jsonl`);
}

/** Every worker log under `resultsDir`, oldest first by name order of start (none: empty). */
export function listWorkerLogs(resultsDir: string): string[] {
  const dir = workersDir(resultsDir);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith(".jsonl")).map((f) => path.join(dir, f));
}

export class WorkerLogWriter {
  private lastStep = -Infinity;
  private readonly timer: NodeJS.Timeout;

  constructor(readonly file: string, hello: Omit<WorkerHello, "type" | "t" | "pid" | "host" | "started">) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.write({ type: "hello", t: Date.now(), pid: process.pid, host: os.hostname(), started: new Date().toISOString(), ...hello });
    // The file's age tells watchers on other hosts that this worker still runs.
    this.timer = setInterval(() => this.touch(), WORKERS.heartbeatMs);
    this.timer.unref();
  }

  write(line: WorkerLine): void {
    fs.appendFileSync(this.file, JSON.stringify(line) + "\n");
  }

  /** Logs a run event of store `store`: steps at most every WORKERS.stepLogEveryMs (and each epoch's last). */
  event(store: string, e: RunEvent): void {
    const t = Date.now();
    switch (e.type) {
      case "start":
        return this.write({ type: "start", t, store, engine: e.backend.kind, dataset: e.dataset, pending: e.pending.length });
      case "unit-start":
        return this.write({ type: "unit-start", t, store, unit: e.unit, fromEpoch: e.fromEpoch });
      case "step": {
        const last = e.progress.step === e.progress.steps;
        if (!last && t - this.lastStep < WORKERS.stepLogEveryMs) return;
        this.lastStep = t;
        return this.write({ type: "step", t, store, unit: e.unit, epoch: e.progress.epoch, step: e.progress.step, steps: e.progress.steps, stepsPerS: e.stepsPerS });
      }
      case "epoch":
        return this.write({ type: "epoch", t, store, unit: e.unit, record: e.record });
      case "unit-end":
        return this.write({ type: "unit-end", t, store, unit: e.unit, state: e.status.state, message: e.status.message });
      default: {
        const text = formatStoreEvent(e);
        if (text !== null) this.write({ type: "say", t, kind: e.type, text });
      }
    }
  }

  close(code: number, error: string | null): void {
    clearInterval(this.timer);
    this.write({ type: "exit", t: Date.now(), code, error });
  }

  private touch(): void {
    try {
      const now = new Date();
      fs.utimesSync(this.file, now, now);
    } catch {
      // removed under us: nothing to keep alive
    }
  }
}

/** Reads a worker log incrementally: each call returns the complete lines added since the last. */
export class WorkerLogReader {
  private offset = 0;
  private partial = "";
  hello: WorkerHello | null = null;
  exit: Extract<WorkerLine, { type: "exit" }> | null = null;

  constructor(readonly file: string) {}

  read(): WorkerLine[] {
    let fd: number;
    try {
      fd = fs.openSync(this.file, "r");
    } catch {
      return [];
    }
    const chunks: Buffer[] = [];
    try {
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        chunks.push(Buffer.from(buf.subarray(0, n)));
        this.offset += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    const text = this.partial + Buffer.concat(chunks).toString("utf8");
    const parts = text.split("\n");
    this.partial = parts.pop() as string;
    const lines: WorkerLine[] = [];
    for (const part of parts) {
      if (part.trim() === "") continue;
      let line: WorkerLine;
      try {
        line = JSON.parse(part) as WorkerLine;
      } catch {
        continue; // not ours to judge; a damaged line shows nothing
      }
      if (line.type === "hello") this.hello = line;
      if (line.type === "exit") this.exit = line;
      lines.push(line);
    }
    return lines;
  }

  /**
   * Whether the worker still runs: not when it wrote its exit line; on this host, while its process
   * lives; on another host, while its log was written within `staleMs` (it is touched every 30 s).
   */
  alive(staleMs: number, now = Date.now()): boolean {
    if (this.exit !== null || this.hello === null) return false;
    try {
      return !ownerGone(this.hello, () => fs.statSync(this.file).mtimeMs, staleMs, now);
    } catch {
      return false; // the log is gone
    }
  }
}
