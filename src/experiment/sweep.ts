// The imbalance sweep: the grid repeated at several target positive rates, one config and one
// results store per rate (data.targetPositiveRate is part of the results key). Every rate's data
// is checked before anything is trained, so a rate that leaves too few test positives stops the
// whole sweep before its first write. The CLI (`--rates`, `--plan sweep`) and notebook 05 run it
// through the same reporter as every other run.
import { checkBatchSizes, ConfigError, ExperimentConfig, validateConfig } from "../config";
import type { DatasetKind } from "../config";
import { prepareData, resolveDataSource, SplitCounts } from "../data/prepare";
import { ExperimentResult, gridUnits, loadResults, refuseUnintendedSynthetic, storeFor, unitNeedsTraining } from "./grid";
import type { EpochRecord, StepRecord } from "./records";
import type { UnitId } from "./stats/selection";
import { ProgressView, ReportedRun, runWithProgress } from "./progress";
import type { RunEvent } from "./grid";

/** One rate of a sweep and what its store holds. */
export interface SweepPoint {
  /** The target rate (config.data.targetPositiveRate). */
  rate: number;
  result: ExperimentResult;
}

/** Every rate's results, and their records merged: each record carries its rate (records.ts Condition). */
export interface SweepResult {
  points: SweepPoint[];
  records: EpochRecord[];
  steps: StepRecord[];
  /** Diverged units, with their rate. */
  failed: UnitId[];
  dataset: DatasetKind;
  /** The first rate's config (the others differ only in data.targetPositiveRate). */
  config: ExperimentConfig;
}

/** Parses `0.1,0.02,0.01` (the CLI's --rates). */
export function parseRates(text: string, flag = "--rates"): number[] {
  const rates = text.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (rates.length === 0 || rates.some((r) => !(r > 0 && r < 1))) {
    throw new ConfigError(`${flag}: "${text}" is not a list of positive rates in (0, 1); give e.g. 0.1,0.02,0.01`);
  }
  return rates;
}

/** One validated config per rate, highest rate first (duplicates refused). */
export function rateConfigs(config: ExperimentConfig, rates: readonly number[]): ExperimentConfig[] {
  if (new Set(rates).size !== rates.length) throw new ConfigError(`rates: ${rates.join(", ")} lists a rate twice; give each rate once`);
  return [...rates].sort((a, b) => b - a).map((rate) => {
    const c: ExperimentConfig = { ...config, data: { ...config.data, targetPositiveRate: rate } };
    validateConfig(c);
    return c;
  });
}

/**
 * What each rate's data holds, after subsampling (none when no config sets a rate); throws the
 * first rate's problem (too few test positives, a last batch of one image). A rate whose store
 * holds every unit finished gives the counts measured when it was trained, without loading its data.
 */
export function checkSweepData(configs: readonly ExperimentConfig[], resultsDir: string): Array<{ rate: number | null; counts: SplitCounts }> {
  if (configs.every((c) => c.data.targetPositiveRate === null)) return [];
  return configs.map((c) => {
    const { store } = storeFor(c, resultsDir);
    const counts = store.meta()?.counts as SplitCounts | undefined;
    if (counts && !gridUnits(c).some((u) => unitNeedsTraining(store, c, u))) return { rate: c.data.targetPositiveRate, counts };
    refuseUnintendedSynthetic(c, resolveDataSource(c.data));
    const data = prepareData(c.data, { seed: c.seed });
    checkBatchSizes(c, data.train.n, data.test.n);
    return { rate: c.data.targetPositiveRate, counts: data.counts };
  });
}

/** One line per rate: images and positives of each split, measured. */
export function sweepDataLine(rate: number | null, counts: SplitCounts): string {
  const split = (s: { images: number; positives: number }): string => `${s.images} images, ${s.positives} positive (p = ${(s.positives / s.images).toFixed(4)})`;
  return `rate ${rate ?? "as the data"}: train ${split(counts.train)}; test ${split(counts.test)}`;
}

/** Reads every rate's store; trains nothing. */
export function loadSweep(configs: readonly ExperimentConfig[], resultsDir: string): SweepResult {
  return sweepOf(configs.map((c) => loadResults(c, resultsDir)));
}

/** The sweep made of each rate's results (read from its store), in the order given. */
function sweepOf(results: readonly ExperimentResult[]): SweepResult {
  const points = results.map((result) => ({ rate: result.config.data.targetPositiveRate as number, result }));
  return {
    points,
    records: points.flatMap((p) => p.result.records),
    steps: points.flatMap((p) => p.result.steps),
    failed: points.flatMap((p) => p.result.failed.map((f) => ({ ...f.unit, target_positive_rate: p.rate }))),
    dataset: points[0].result.dataset,
    config: points[0].result.config,
  };
}

export interface SweepRunOptions {
  resultsDir: string;
  /** A view per rate (a notebook shows one live display per rate; a terminal reuses one). */
  view(config: ExperimentConfig): ProgressView;
  allowEngineChange?: boolean;
  exitOnSecondInterrupt?: boolean;
  onStart?(e: Extract<RunEvent, { type: "start" }>, config: ExperimentConfig): void;
  /** Called with what each rate's data holds, once checked, before anything is trained. */
  onDataChecked?(checked: ReturnType<typeof checkSweepData>): void;
}

/**
 * Checks every rate's data (when a rate is set), then runs the configs in turn, each training only
 * what its store lacks. An interrupt stops the sweep after the step in flight.
 */
export async function runSweep(configs: readonly ExperimentConfig[], opts: SweepRunOptions): Promise<{ sweep: SweepResult | null; runs: ReportedRun[]; stopped: boolean }> {
  const checked = checkSweepData(configs, opts.resultsDir);
  if (checked.length > 0) opts.onDataChecked?.(checked);
  const runs: ReportedRun[] = [];
  for (const config of configs) {
    const run = await runWithProgress(config, {
      resultsDir: opts.resultsDir, view: opts.view(config), allowEngineChange: opts.allowEngineChange, exitOnSecondInterrupt: opts.exitOnSecondInterrupt,
      onStart: (e) => opts.onStart?.(e, config),
    });
    runs.push(run);
    if (run.stopped) break;
  }
  const rated = configs.every((c) => c.data.targetPositiveRate !== null);
  // Each run's result is what its store holds at its end; rates an interrupt left unstarted are read.
  const results = configs.map((c, i) => runs[i]?.result ?? loadResults(c, opts.resultsDir));
  return { sweep: rated ? sweepOf(results) : null, runs, stopped: runs.some((r) => r.stopped) };
}
