// What a run will cost, from measured speeds: `--dry-run` measures them in a short run
// (speed_probe.ts), a long run after its first epoch (experiment/progress.ts). Both project the
// same way: a unit is its set-up, one evaluation per epoch plus epoch 0, and its training epochs;
// the selection and the whole grid are that many units.
import { BACKBONES, ExperimentConfig, REFERENCE_ARMS } from "../config";
import { IMAGENET_WEIGHTS } from "../model/pretrained";
import { formatDuration as hms } from "../util/duration";

/** Seconds of one unit's pieces, measured or derived from measured rates. */
export interface UnitCost {
  /** All training steps of one epoch. */
  trainEpochS: number;
  /** One evaluation over the test split (done at epoch 0 and after every epoch). */
  evalS: number;
  /** Building the model before epoch 0 (weights loading excluded). */
  setupS: number;
}

export interface UnitCounts {
  /** Units the config selects that can run (no ImageNet half for a model without ImageNet weights). */
  selected: number;
  /** Of those, the ones the results store does not hold finished. */
  toRun: number;
  /** Both backbones x both arms x the config's trials, same restriction. */
  grid: number;
}

export interface Projection {
  epochS: number;
  unitS: number;
  selectionS: number;
  toRunS: number;
  gridS: number;
  counts: UnitCounts;
}

/** False for the ImageNet half of a model torchvision has no ImageNet weights for (it reports "unavailable"). */
export function backboneCanRun(config: ExperimentConfig, backbone: string): boolean {
  return backbone !== "imagenet" || IMAGENET_WEIGHTS[config.model] !== undefined;
}

function runnableBackbones(config: ExperimentConfig, backbones: readonly string[]): number {
  return backbones.filter((b) => backboneCanRun(config, b)).length;
}

/** Unit counts of the selection and the whole grid; `toRun` defaults to the whole selection. */
export function unitCounts(config: ExperimentConfig, toRun: number | null = null): UnitCounts {
  const selected = runnableBackbones(config, config.backbones) * config.arms.length * config.trials;
  return { selected, toRun: toRun ?? selected, grid: runnableBackbones(config, BACKBONES) * REFERENCE_ARMS.length * config.trials };
}

export function project(cost: UnitCost, epochs: number, counts: UnitCounts): Projection {
  const unitS = cost.setupS + (epochs + 1) * cost.evalS + epochs * cost.trainEpochS;
  return {
    epochS: cost.trainEpochS + cost.evalS, unitS, counts,
    selectionS: counts.selected * unitS, toRunS: counts.toRun * unitS, gridS: counts.grid * unitS,
  };
}

/** One line: epoch, unit, selection (and what is still to run), whole grid. */
export function projectionText(p: Projection, cost: UnitCost, trainImagesPerS: number): string {
  const c = p.counts;
  const toRun = c.toRun === c.selected ? "" : ` (${c.toRun} still to run: ~${hms(p.toRunS)})`;
  return `epoch ~${hms(p.epochS)} (training ${hms(cost.trainEpochS)} at ${trainImagesPerS.toFixed(1)} img/s + evaluation ${hms(cost.evalS)}); ` +
    `unit ~${hms(p.unitS)}; selection ${c.selected} unit(s) ~${hms(p.selectionS)}${toRun}; whole grid ${c.grid} unit(s) ~${hms(p.gridS)}`;
}

/**
 * The projection a long run prints after its first epoch, from that epoch's own numbers: epoch 0's
 * evaluation time, epoch 1's wall time (training + evaluation) and the set-up before epoch 0. The
 * progress reporter feeds it its events; it answers one line, once.
 */
export class FirstEpochProjector {
  private counts: UnitCounts | null = null;
  private runStart = 0;
  private unitStart = 0;
  private eval0: { evalS: number; setupS: number } | null = null;
  private done = false;

  constructor(private readonly config: ExperimentConfig, private readonly now: () => number = () => performance.now() / 1000) {}

  /** Training starts with these units (the ImageNet half of a model without weights costs nothing). */
  start(pending: ReadonlyArray<{ backbone: string }>): void {
    this.counts = unitCounts(this.config, pending.filter((u) => backboneCanRun(this.config, u.backbone)).length);
    this.runStart = this.now();
  }

  unitStarted(): void {
    this.unitStart = this.now();
    this.eval0 = null;
  }

  /** After each stored epoch; returns the projection line after the first trained epoch, else null. */
  epochDone(epoch: number, wallS: number, imagesPerS: number | null): string | null {
    if (this.done || this.counts === null) return null;
    if (epoch === 0) {
      this.eval0 = { evalS: wallS, setupS: Math.max(0, this.now() - this.unitStart - wallS) };
      return null;
    }
    if (epoch !== 1 || this.eval0 === null || imagesPerS === null) return null;
    this.done = true;
    const cost: UnitCost = { trainEpochS: Math.max(0, wallS - this.eval0.evalS), ...this.eval0 };
    const p = project(cost, this.config.epochs, this.counts);
    const left = Math.max(0, p.toRunS - (this.now() - this.runStart));
    return `projection after the first epoch: ${projectionText(p, cost, imagesPerS)}; this run ~${hms(p.toRunS)} in all, ~${hms(left)} left`;
  }
}
