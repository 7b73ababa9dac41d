// The one progress reporter of a run, used by the CLI (a terminal line redrawn with \r) and by the
// notebooks (a display updated in place), so both read the same: a status line with speed and ETA,
// one row per finished epoch (airbench style), one row per unit that did not finish, Ctrl-C or a
// kernel interrupt stopping after the step in flight.
import type { ExperimentConfig } from "../config";
import { TrainingStopped } from "../train/loop";
import { ExperimentResult, loadResults, runExperiment, RunEvent } from "./grid";
import { unitLabel, UnitKey } from "./store";
import type { EpochRecord } from "./records";
import { describeOwner, LockOwner } from "./unit_lock";
import { completeUnits } from "./run_summary";
import { formatDuration } from "../util/duration";
import { FirstEpochProjector } from "./projection";

/** `[#####...............]`: 20 characters, `fraction` (0..1) of them filled. */
export function progressBar(fraction: number): string {
  const width = 20;
  const filled = Math.min(width, Math.round(fraction * width));
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

/** One line: where the run is, the last loss, speed and time left. */
export function formatStep(e: Extract<RunEvent, { type: "step" }>, epochs: number): string {
  const p = e.progress;
  return `${progressBar(e.stepsDone / Math.max(1, e.totalSteps))} ${unitLabel(e.unit)} | epoch ${p.epoch}/${epochs} step ${p.step}/${p.steps} | loss ${p.loss.toFixed(4)} | ` +
    `${e.stepsPerS.toFixed(2)} steps/s, ${p.imagesPerS.toFixed(1)} img/s | ETA ${formatDuration(e.etaSeconds)}`;
}

const COLUMNS: Array<[string, number]> = [["backbone", 8], ["arm", 13], ["trial", 5], ["epoch", 5], ["test_bce", 8], ["roc_auc", 7], ["bias", 7], ["train_loss", 10], ["img/s", 7], ["wall_s", 7]];

export function epochTableHeader(): string {
  return COLUMNS.map(([name, w]) => name.padStart(w)).join("  ");
}

/** A row of the per-epoch table (airbench style), aligned with epochTableHeader(). */
export function formatEpochRow(r: EpochRecord): string {
  const num = (x: number | null, digits: number) => (x === null ? "-" : x.toFixed(digits));
  const cells = [r.backbone, r.arm, String(r.trial), String(r.epoch), num(r.loss, 4), num(r.roc_auc, 4), num(r.output_bias_value, 3),
    num(r.train_loss, 4), num(r.images_per_s, 1), num(r.wall_s, 1)];
  return cells.map((c, i) => c.padStart(COLUMNS[i][1])).join("  ");
}

/** `scratch/vanilla trial 0 (pid 12 on host-a, heartbeat 3 s ago), ...` */
function lockedUnits(units: Array<{ unit: UnitKey; owner: LockOwner }>): string {
  return units.map((u) => `${unitLabel(u.unit)} (${describeOwner(u.owner)})`).join(", ");
}

/**
 * The line for an event about sharing the store with other processes or cleaning up after a
 * killed one; null for the training events, which have their own display.
 */
export function formatStoreEvent(e: RunEvent): string | null {
  switch (e.type) {
    case "recovered":
      return `recovered ${unitLabel(e.unit)} after a killed run: ${e.actions.join("; ")}`;
    case "unit-skip":
      return `skipping ${unitLabel(e.unit)}: another process is training it (${describeOwner(e.owner)}); waiting for it at the end`;
    case "lock-lost":
      return `${unitLabel(e.unit)}: another process took over this unit's lock (this run stalled past BIAS_INIT_LOCK_STALE_S); left to it`;
    case "waiting":
      return `waiting ${formatDuration(e.waitedS)} (at most ${formatDuration(e.limitS)}) for ${e.units.length} unit(s) other processes are training: ${lockedUnits(e.units)}`;
    case "wait-timeout":
      return `stopped waiting after ${formatDuration(e.waitedS)} (BIAS_INIT_LOCK_WAIT_S): ${lockedUnits(e.units)} still being trained; run again later to include them`;
    case "note":
      return e.text;
    default:
      return null;
  }
}

/** Live tensors and resident memory after an epoch: both must stay flat from epoch 1 on. */
export function formatMemory(numTensors: number): string {
  return `tensors ${numTensors} | rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GB`;
}

/** Where a run's progress goes; viz's LiveProgress is one (a notebook output), `terminalView` another. */
export interface ProgressView {
  /** The status line, redrawn in place (throttled or printed now and then where it cannot be). */
  setLine(text: string): void;
  /** A permanent row under the epoch table's header. */
  addRow(text: string): void;
  /** The closing line, replacing the status line. */
  finish(text: string): void;
}

/** A terminal: the status line redrawn on stderr when it is a TTY, else printed every 30 s; rows on stdout. */
export function terminalView(stream: NodeJS.WriteStream = process.stderr, everyMs = 30_000): ProgressView {
  const tty = stream.isTTY === true;
  let lastPrinted = 0;
  let header = false;
  const clear = (): void => {
    if (tty) stream.write("\r\x1b[2K");
  };
  return {
    setLine(text) {
      if (tty) stream.write(`\r\x1b[2K${text}`);
      else if (Date.now() - lastPrinted > everyMs) {
        lastPrinted = Date.now();
        stream.write(text + "\n");
      }
    },
    addRow(text) {
      clear();
      if (!header) console.log(epochTableHeader());
      header = true;
      console.log(text);
    },
    finish(text) {
      clear();
      console.log(text);
    },
  };
}

export interface ReportedRun {
  result: ExperimentResult;
  /** True when an interrupt stopped the run; finished epochs are in the store. */
  stopped: boolean;
  /** False when the store already held everything (nothing was trained). */
  trained: boolean;
  seconds: number;
}

export interface ReportOptions {
  resultsDir: string;
  /** Continue units started on another engine (CLI --allow-engine-change). */
  allowEngineChange?: boolean;
  view: ProgressView;
  /** Called once training starts (not when the store already holds everything). */
  onStart?(e: Extract<RunEvent, { type: "start" }>): void;
  /** A second SIGINT exits the process at once (a terminal); a kernel only ever asks to stop. */
  exitOnSecondInterrupt?: boolean;
  /** Signals that stop the run after the step in flight (default SIGINT; a worker adds SIGTERM, what Slurm and Kubernetes send). */
  stopSignals?: NodeJS.Signals[];
  /** Wait at the end for units other processes are training (default true). */
  waitForOthers?: boolean;
  /** Every run event, after the view has shown it (a worker's event log). */
  onEvent?(e: RunEvent): void;
}

/**
 * Runs every unit of `config` the store lacks, reporting to `opts.view`; an interrupt (SIGINT)
 * stops after the step in flight and returns what the store holds.
 */
export async function runWithProgress(config: ExperimentConfig, opts: ReportOptions): Promise<ReportedRun> {
  const { view } = opts;
  let stop = false;
  const onInterrupt = (): void => {
    if (stop && opts.exitOnSecondInterrupt) process.exit(130);
    stop = true;
    view.addRow(`interrupt: stopping after the step in flight${opts.exitOnSecondInterrupt ? " (Ctrl-C again to quit now)" : ""}; run the same again to resume`);
  };
  const signals = opts.stopSignals ?? ["SIGINT"];
  for (const s of signals) process.on(s, onInterrupt);
  const explained = new Set<string>();
  const projector = new FirstEpochProjector(config);
  let trained = false;
  const started = Date.now();
  const seconds = (): number => (Date.now() - started) / 1000;
  let waiting = false;
  const onEvent = (e: RunEvent): void => {
    const line = formatStoreEvent(e);
    if (e.type === "waiting") {
      // The first waiting line is kept; later ones redraw the status line.
      if (!waiting) view.addRow(line as string);
      else view.setLine(line as string);
      waiting = true;
    } else if (line !== null) view.addRow(line);
    if (e.type === "start") {
      trained = true;
      opts.onStart?.(e);
      projector.start(e.pending);
      view.setLine(`training ${e.pending.length} unit(s), ${e.totalSteps} steps, into ${e.dir}`);
    } else if (e.type === "step") view.setLine(formatStep(e, config.epochs));
    else if (e.type === "unit-start") projector.unitStarted();
    else if (e.type === "epoch") {
      view.addRow(`${formatEpochRow(e.record)}  | ${formatMemory(e.numTensors)}`);
      // The same projection as --dry-run, from this run's own first epoch.
      const projection = projector.epochDone(e.record.epoch, e.record.wall_s, e.record.images_per_s);
      if (projection !== null) view.addRow(projection);
    }
    else if (e.type === "unit-end" && e.status.state !== "done") {
      // A reason shared by several units (e.g. weights unavailable) is spelled out once.
      const message = e.status.message ?? "";
      view.addRow(`${unitLabel(e.unit)}: ${e.status.state}${explained.has(message) ? " (as above)" : `: ${message}`}`);
      explained.add(message);
    }
    opts.onEvent?.(e);
  };
  try {
    const result = await runExperiment(config, { resultsDir: opts.resultsDir, onEvent, shouldStop: () => stop, allowEngineChange: opts.allowEngineChange, waitForOthers: opts.waitForOthers });
    if (trained) {
      const blocked = result.unavailable.length > 0 ? `, ${result.unavailable.length} cannot run` : "";
      view.finish(`done in ${formatDuration(seconds())}: ${completeUnits(result)} of ${result.units.length} unit(s) complete in ${result.dir}${blocked}`);
    }
    return { result, stopped: false, trained, seconds: seconds() };
  } catch (e) {
    if (e instanceof TrainingStopped) {
      view.finish("stopped by interrupt: finished epochs are saved; run the same again to resume from the last one");
      return { result: loadResults(config, opts.resultsDir), stopped: true, trained, seconds: seconds() };
    }
    if (trained) view.finish(`failed: ${(e as Error).message}`);
    throw e;
  } finally {
    for (const s of signals) process.off(s, onInterrupt);
  }
}
