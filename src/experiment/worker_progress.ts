// The combined progress of several workers on one results store, for the process that watches them
// (the `--workers N` parent, a notebook attached to detached workers, `--attach`): each worker's
// event log (worker_log.ts) says which unit, epoch and step it is at and brings its finished epochs
// as table rows; the store says how much of the selection is done, whoever did it.
import * as fs from "fs";
import * as os from "os";
import type { ExperimentConfig } from "../config";
import { formatDuration } from "../util/duration";
import { gridUnits } from "./grid";
import { formatEpochRow, progressBar } from "./progress";
import { ResultsStore, UnitKey, unitLabel } from "./store";
import { WorkerLine, WorkerLogReader } from "./worker_log";

/** What a worker's exit looked like from outside: its exit code or the signal that ended it. */
export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WatchedWorker {
  /** `w1`, `w2`, ... in the order they were started or found. */
  label: string;
  pid: number;
  reader: WorkerLogReader;
  /** Set when a child of this process exits (null: running, or not a child). */
  exit: WorkerExit | null;
  /** True for a child of this process: it has ended only once `exit` is set. */
  child: boolean;
  /** The file its stdout and stderr go to, where known (to quote an error). */
  outFile: string | null;
  current: { store: string; unit: UnitKey; epoch: number; step: number; steps: number; stepsPerS: number } | null;
  waiting: boolean;
}

/** The kinds of reporter lines a combined view shows; skips and waits are how workers share, not news. */
const SHOWN_SAYS = new Set(["recovered", "lock-lost", "wait-timeout", "note"]);

export class WorkerWatch {
  private readonly configs = new Map<string, ExperimentConfig>();
  private first: { t: number; done: number } | null = null;
  private readonly ended = new Set<string>();
  /** Reasons already spelled out (several units unavailable for one reason are listed once in full). */
  private readonly explained = new Set<string>();

  constructor(readonly resultsDir: string, readonly workers: WatchedWorker[], private readonly staleMs: number) {}

  /** Reads what the workers logged since the last poll; returns the rows to add to the view. */
  poll(): string[] {
    const rows: string[] = [];
    for (const w of this.workers) {
      for (const line of w.reader.read()) rows.push(...this.apply(w, line));
      if (!this.running(w) && !this.ended.has(w.label)) {
        this.ended.add(w.label);
        w.current = null;
        // Workers failing alike (a config error reaches them all) are spelled out once.
        const line = endLine(w);
        const reason = line.slice(w.label.length);
        const failed = reason.startsWith(": exited with code");
        rows.push(failed && this.explained.has(reason) ? `${w.label}: exited the same way` : line);
        if (failed) this.explained.add(reason);
      }
    }
    return rows;
  }

  /** A child runs until it exits; another worker while its log says so (worker_log.ts `alive`). */
  running(w: WatchedWorker): boolean {
    return w.child ? w.exit === null : w.reader.alive(this.staleMs);
  }

  allEnded(): boolean {
    return this.workers.every((w) => !this.running(w));
  }

  /** The configs the workers announced, one per store. */
  configList(): ExperimentConfig[] {
    return [...this.configs.values()];
  }

  /** The closing line: units complete of those that can run. */
  summaryLine(seconds: number): string {
    const { units, unitsDone } = this.progress();
    return `workers ended after ${formatDuration(seconds)}: ${unitsDone} of ${units} unit(s) that can run are finished`;
  }

  /** One line: units done, what each running worker does, the combined speed and time left. */
  statusLine(now = Date.now()): string {
    const { done, total, units, unitsDone } = this.progress();
    this.first ??= { t: now, done };
    const rate = now > this.first.t ? (done - this.first.done) / ((now - this.first.t) / 1000) : 0;
    const eta = rate > 0 ? (total - done) / rate : null;
    const running = this.workers.filter((w) => this.running(w));
    const doing = running.map((w) => {
      if (w.current !== null) return `${w.label} ${unitLabel(w.current.unit)} e${w.current.epoch} ${w.current.step}/${w.current.steps}`;
      return `${w.label} ${w.waiting ? "waiting for units others train" : w.reader.hello === null ? "starting" : "preparing"}`;
    });
    const speed = running.reduce((s, w) => s + (w.current !== null ? w.current.stepsPerS : 0), 0);
    return `${progressBar(total > 0 ? done / total : 0)} ${unitsDone}/${units} units | ${doing.length > 0 ? doing.join(" | ") : "no worker running"} | ` +
      `${speed.toFixed(2)} steps/s | ETA ${formatDuration(eta)}`;
  }

  private apply(w: WatchedWorker, line: WorkerLine): string[] {
    switch (line.type) {
      case "hello":
        line.configs.forEach((c, i) => this.configs.set(line.stores[i], c));
        return [`${w.label}: pid ${line.pid} on ${line.host}${line.gpu === null ? "" : `, CUDA_VISIBLE_DEVICES=${line.gpu}`}` +
          `${(line.threads ?? null) === null ? "" : `, TF_NUM_INTRAOP_THREADS=${line.threads}`}`];
      case "unit-start":
        w.current = { store: line.store, unit: line.unit, epoch: line.fromEpoch, step: 0, steps: 0, stepsPerS: 0 };
        w.waiting = false;
        return line.fromEpoch > 1 ? [`${w.label}: resumes ${unitLabel(line.unit)} from its checkpoint after epoch ${line.fromEpoch - 1}`] : [];
      case "step":
        w.current = { store: line.store, unit: line.unit, epoch: line.epoch, step: line.step, steps: line.steps, stepsPerS: line.stepsPerS };
        return [];
      case "epoch":
        return [`${formatEpochRow(line.record)}  | ${w.label}`];
      case "unit-end":
        w.current = null;
        if (line.state === "done") return [];
        if (line.message !== null && this.explained.has(line.message)) return [`${w.label}: ${unitLabel(line.unit)}: ${line.state} (as above)`];
        if (line.message !== null) this.explained.add(line.message);
        return [`${w.label}: ${unitLabel(line.unit)}: ${line.state}${line.message ? `: ${line.message}` : ""}`];
      case "say":
        w.waiting = line.kind === "waiting";
        return SHOWN_SAYS.has(line.kind) ? [`${w.label}: ${line.text}`] : [];
      default:
        return [];
    }
  }

  /**
   * Training epochs recorded in the store (plus the step fraction of epochs in flight) over those
   * the selection needs, and units finished over units that can run (unavailable ones excluded).
   */
  private progress(): { done: number; total: number; units: number; unitsDone: number } {
    let done = 0;
    let total = 0;
    let units = 0;
    let unitsDone = 0;
    const running = this.workers.filter((w) => this.running(w));
    for (const [hash, config] of this.configs) {
      const store = new ResultsStore(this.resultsDir, hash);
      for (const unit of gridUnits(config)) {
        const status = store.status(unit);
        if (status?.state === "unavailable") continue;
        const recorded = Math.max(store.lastEpoch(unit), 0);
        const finished = status?.state === "failed" || recorded >= config.epochs;
        units++;
        total += config.epochs;
        if (finished) {
          unitsDone++;
          done += config.epochs;
          continue;
        }
        done += recorded;
        const inFlight = running.find((w) => w.current?.store === hash && unitLabel(w.current.unit) === unitLabel(unit));
        if (inFlight?.current && inFlight.current.epoch > recorded && inFlight.current.steps > 0) done += inFlight.current.step / inFlight.current.steps;
      }
    }
    return { done, total, units, unitsDone };
  }
}

function endLine(w: WatchedWorker): string {
  const exit = w.reader.exit;
  if (exit !== null) {
    if (exit.code === 0) return `${w.label}: finished`;
    if (exit.code === 130) return `${w.label}: stopped after its step in flight`;
    return `${w.label}: exited with code ${exit.code}${exit.error ? `: ${exit.error}` : ""}`;
  }
  const error = w.outFile === null ? null : lastErrorLine(w.outFile);
  if (error !== null) return `${w.label}: exited with code ${w.exit?.code ?? "?"}: ${error}`;
  const how = w.exit?.signal ? `was killed (${w.exit.signal})` : w.exit?.code != null ? `exited with code ${w.exit.code}` : "is gone";
  const where = w.outFile ? `; its output: ${w.outFile}` : "";
  const host = w.reader.hello && w.reader.hello.host !== os.hostname() ? ` on ${w.reader.hello.host}` : "";
  return `${w.label}${host}: ${how} without finishing; a unit it held is taken over by another worker or the next run${where}`;
}

/** The last `error: ...` line a worker printed (the entry points' one-line errors), or null. */
function lastErrorLine(file: string): string | null {
  try {
    const lines = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.startsWith("error: "));
    return lines.length > 0 ? lines[lines.length - 1] : null;
  } catch {
    return null;
  }
}
