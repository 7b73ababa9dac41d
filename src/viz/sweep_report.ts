// What notebooks/05_imbalance_sweep.ipynb (and 04's pointer to it) shows: `nb.sweep()` trains
// every rate's store what it lacks (one live progress display per rate; with `{ workers: N,
// detach }`, N worker processes over all the rates, as `run` has them) or only reads them, and
// returns this object, whose methods each show one figure or table of src/viz/sweep_figures.ts and
// src/experiment/stats/sweep_stats.ts. Everything is read from the stores: re-running a cell is safe.
import { ARMS } from "../config";
import type { ExperimentConfig, PresetName } from "../config";
import { epochTableHeader } from "../experiment/progress";
import { planRates } from "../experiment/plans";
import { planStatusText } from "../experiment/run_summary";
import { checkSweepData, loadSweep, rateConfigs, runSweep, sweepDataLine, SweepResult } from "../experiment/sweep";
import { ConfigOnWorkers, runConfigsOnWorkers } from "../experiment/workers";
import { sweepConclusions } from "../experiment/sweep_conclusions";
import { sweepCatchUpRows, sweepDataRows } from "../experiment/stats/sweep_stats";
import { catchUpDefinition } from "../experiment/stats/tables";
import { intervalText } from "../experiment/stats/scales";
import type { PlotlyFigure } from "./plotly_figure";
import { LiveProgress, showMarkdown, showTable } from "./html_output";
import { showFigure } from "./plotly_inline";
import { sweepCalibrationFigure, sweepDifferenceFigure, sweepHockeyStickFigure, sweepLearningCurves, sweepStartFigure } from "./sweep_figures";

/** The sweep of `preset` (plan "sweep" applied to `config`): trained first unless `train` is false. */
export async function openSweep(preset: PresetName, config: ExperimentConfig, resultsDir: string, train: boolean, workers?: ConfigOnWorkers): Promise<SweepReport> {
  const configs = rateConfigs(config, planRates("sweep", preset) ?? []);
  if (train && workers) {
    // Every rate's data checked here first (too few test positives stops it before any worker starts).
    showMarkdown(checkSweepData(configs, resultsDir).map((c) => `Target ${sweepDataLine(c.rate, c.counts)}`).join("  \n"));
    await runConfigsOnWorkers(configs, { ...workers, resultsDir, view: new LiveProgress(epochTableHeader()) });
  }
  const planned = !train || workers ? loadSweep(configs, resultsDir) : (await runSweep(configs, {
    resultsDir,
    view: () => new LiveProgress(epochTableHeader()),
    onStart: (e, c) => showMarkdown(`Target ${sweepDataLine(c.data.targetPositiveRate, e.counts)}; training its store's missing units.`),
  })).sweep as SweepResult;
  showMarkdown(planned.points.map((p) => `Target rate ${p.rate}: ${planStatusText("sweep", p.result)}`).join("  \n"));
  // Arms are a selection, not part of the store's key: the third arm, when a run selected it
  // (--arms ...,positive_rate_zero_head), is in the same stores and shown beside the others.
  const all = loadSweep(configs.map((c) => ({ ...c, arms: [...ARMS] })), resultsDir);
  return new SweepReport(all.records.some((r) => !config.arms.includes(r.arm)) ? all : planned);
}

export class SweepReport {
  constructor(readonly sweep: SweepResult) {}

  private has(): boolean {
    if (this.sweep.records.length > 0) return true;
    showMarkdown(`No sweep results in the store yet (rates ${this.sweep.points.map((p) => p.rate).join(", ")}): run \`05_imbalance_sweep\`.`);
    return false;
  }

  private show(draw: () => PlotlyFigure): void {
    if (this.has()) showFigure(draw());
  }

  /** Per rate: images and positives of the training and test sets after subsampling, measured. */
  showData(): void {
    const rows = sweepDataRows(this.sweep);
    const pending = rows.filter((r) => r.p === null).map((r) => r.target);
    showTable({ columns: Object.keys(rows[0]), values: rows.map((r) => Object.values(r)) }, {
      caption: `Each target rate's data as the store recorded it: positives subsampled, every negative kept; p and test_p measured from the labels${this.sweep.dataset === "synthetic" ? " (SYNTHETIC data)" : ""}` +
        (pending.length > 0 ? `; rate ${pending.join(", ")} not run yet` : ""),
    });
  }

  /** Test BCE and ROC-AUC per epoch, a column per rate (small multiples in one figure). */
  showLearningCurves(): void { this.show(() => sweepLearningCurves(this.sweep)); }
  /** Test BCE before any step against p, with H(p) and log 2. */
  showStart(): void { this.show(() => sweepStartFigure(this.sweep)); }
  /** Paired difference (arm - vanilla) after the last epoch against p. */
  showDifference(): void { this.show(() => sweepDifferenceFigure(this.sweep)); }
  /** ECE and mean predicted probability per epoch, a column per rate. */
  showCalibration(): void { this.show(() => sweepCalibrationFigure(this.sweep)); }

  /** Steps to catch up and excess loss against p: the figure, then the table with the images the steps stand for. */
  showHockeyStick(): void {
    if (!this.has()) return;
    const rows = sweepCatchUpRows(this.sweep);
    if (rows.length === 0) return showMarkdown("No trial of the sweep holds both arms' first-epoch steps.");
    showFigure(sweepHockeyStickFigure(this.sweep));
    const batch = this.sweep.config.trainBatch;
    showTable({
      columns: ["p", "target", "against", "pairs", "caught_up", "steps_to_catch_up", "steps_ci_low", "steps_ci_high", "images_to_catch_up", "excess_loss", "excess_ci_low", "excess_ci_high"],
      values: rows.map((r) => [r.p, r.target, r.arm, r.pairs, r.caught_up, r.steps_to_catch_up?.mean ?? null, r.steps_to_catch_up?.ci_low ?? null, r.steps_to_catch_up?.ci_high ?? null,
        r.steps_to_catch_up === null ? null : r.steps_to_catch_up.mean * batch, r.excess_loss.mean, r.excess_loss.ci_low, r.excess_loss.ci_high]),
    }, { caption: `The hockey stick per rate, vanilla against each prior arm. ${catchUpDefinition(batch)} ${intervalText([["both", "natural"]], "paired trials")}; steps averaged over the pairs that caught up.` });
  }

  /** The conclusions written from these numbers (experiment/sweep_conclusions.ts). */
  conclusions(): void {
    if (this.has()) showMarkdown(sweepConclusions(this.sweep));
  }
}
