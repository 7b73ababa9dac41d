// Text for progress and per-epoch rows, shared by the CLI (a terminal line redrawn with \r) and the
// notebooks (a display updated in place), so both read the same.
import type { RunEvent } from "./grid";
import type { UnitKey } from "./store";
import type { EpochRecord } from "./records";

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function unitLabel(u: UnitKey): string {
  return `${u.backbone}/${u.arm} trial ${u.trial}`;
}

/** One line: where the run is, the last loss, speed and time left. */
export function formatStep(e: Extract<RunEvent, { type: "step" }>, epochs: number): string {
  const p = e.progress;
  const width = 20;
  const filled = Math.min(width, Math.round((e.stepsDone / Math.max(1, e.totalSteps)) * width));
  const bar = "#".repeat(filled) + ".".repeat(width - filled);
  return `[${bar}] ${unitLabel(e.unit)} | epoch ${p.epoch}/${epochs} step ${p.step}/${p.steps} | loss ${p.loss.toFixed(4)} | ` +
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

/** Live tensors and resident memory after an epoch: both must stay flat from epoch 1 on. */
export function formatMemory(numTensors: number): string {
  return `tensors ${numTensors} | rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GB`;
}
