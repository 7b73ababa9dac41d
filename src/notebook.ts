// The facade the notebooks import: each cell is one or two calls on the object `notebookSetup()`
// returns, each a line into the library. Every number comes from the store: re-running a cell is safe.
//   const nb = await notebookSetup("02 From scratch");   // header: preset, engine, dataset, store
//   const result = await nb.run("scratch");              // trains only what the store lacks
//   nb.showLearningCurves(result);                       // the reference figure, per backbone run
//
// The environment (BIAS_INIT_PRESET, BIAS_INIT_RESULTS, BIAS_INIT_DATA, BIAS_INIT_BACKEND) is read by src/config.ts.
import * as fs from "fs";
import * as path from "path";
import { BACKBONE_LABEL, Backbone, ConfigError, ConfigOverrides, ExperimentConfig, PresetName, defaultDataDir, defaultPreset, defaultResultsDir, describeSetting, makeConfig, mergeOverrides } from "./config";
import { BackendInfo, initBackend, unusedGpuLines } from "./engine/backend";
import { PlanName, planOverrides } from "./experiment/plans";
import { ExperimentResult, loadResults } from "./experiment/grid";
import { runWithProgress, epochTableHeader } from "./experiment/progress";
import { ConfigOnWorkers, runConfigOnWorkers } from "./experiment/workers";
import { asSentence, completeUnits, missingWeightsReason, planStatusText, unitsByReason } from "./experiment/run_summary";
import { CaptionedTable, catchUpTables, evaluationModeTables, logitSpreadRows, logitSpreadTables, resultsTable, summaryTables } from "./experiment/stats/tables";
import type { EpochMetric } from "./experiment/records";
import { conclusionParts, logitSpreadFindings, PlanResults, writeConclusions } from "./experiment/conclusions";
import { PreparedData, prepareData, preparationStep } from "./data/prepare";
import { biasMathsTable } from "./maths";
import { modelSummaryTable } from "./model/architecture";
import { PositiveRateOptions, biasCurve, calibrationFigure, classBalanceFigure, learningCurves, pairedDifferenceFigure, stepLossCurve } from "./viz/figures";
import type { PlotlyFigure } from "./viz/plotly_figure";
import { LiveProgress, StepStatus, TableLike, TableOptions, showMarkdown, showTable } from "./viz/html_output";
import { showFigure, showPlotlyLibrary } from "./viz/plotly_inline";
import { exportFigures } from "./viz/chromium_export";
import { showSampleImages } from "./viz/sample_images";
import { showNotebookHeader } from "./viz/notebook_header";
import { openSweep, SweepReport } from "./viz/sweep_report";

export class Notebook {
  private prepared: PreparedData | null = null;

  constructor(readonly preset: PresetName, readonly backend: BackendInfo, readonly resultsDir: string) {}

  /** The preset's config with a plan's or explicit overrides; data from BIAS_INIT_DATA (default data/). */
  config(what: PlanName | ConfigOverrides = {}): ExperimentConfig {
    return makeConfig(this.preset, mergeOverrides({ data: { dir: defaultDataDir() } }, typeof what === "string" ? planOverrides(what, this.preset) : what));
  }

  /** The preset's data (CIFAR-10 if on disk, else the synthetic stand-in), loaded once. */
  get data(): PreparedData {
    if (this.prepared === null) this.prepared = prepareData(this.config().data);
    return this.prepared;
  }

  /**
   * Trains every unit of the plan the store lacks, with a live status line and a per-epoch table
   * updated in place, then returns all units from the store. A kernel interrupt stops after the
   * step in flight; running the cell again resumes. `{ workers: N, detach: true }`: N processes
   * that outlive the kernel; an interrupt stops the watching; the cell run again attaches to them.
   */
  async run(what: PlanName | ConfigOverrides = {}, workers?: ConfigOnWorkers): Promise<ExperimentResult> {
    const opts = { resultsDir: this.resultsDir, view: new LiveProgress(epochTableHeader()) };
    const run = workers ? await runConfigOnWorkers(this.config(what), { ...workers, ...opts }) : await runWithProgress(this.config(what), opts);
    if (!run.trained) this.md(`Nothing to train: the store (\`${run.result.dir}\`) holds ${completeUnits(run.result)} of ${run.result.units.length} unit(s) of this config complete. Delete that folder to train again.`);
    this.showProblems(run.result);
    return run.result;
  }

  /** What the store holds for a plan, without training anything. */
  results(what: PlanName | ConfigOverrides = {}): ExperimentResult { return loadResults(this.config(what), this.resultsDir); }

  /** `results`, plus one line saying how complete the stored plan is and which notebook fills it. */
  load(plan: PlanName): ExperimentResult {
    const result = this.results(plan);
    this.md(planStatusText(plan, result));
    this.showProblems(result);
    return result;
  }

  private showProblems(result: ExperimentResult): void { if (unitsByReason(result).length > 0) this.md(unitsByReason(result).join("\n\n")); }

  // Output: one way to show each kind of thing.
  show(fig: PlotlyFigure): void { showFigure(fig); }
  table(table: TableLike, opts: TableOptions = {}): void { showTable(table, opts); }
  md(markdown: string): void { showMarkdown(markdown); }
  private tables(list: readonly CaptionedTable[], none: string): void {
    if (list.length === 0) return this.md(none);
    for (const { table, caption } of list) this.table(table, { caption });
  }

  /** The measured positive rate and dataset of a result (the demo trains on a subset), else the preset's data; its failed units and trials. */
  private figureOptions(backbone: Backbone, result: ExperimentResult): PositiveRateOptions {
    return { backbone, dataset: result.dataset, positiveRate: result.positiveRate ?? this.data.positiveRate,
      failed: result.failed.map((f) => f.unit), trials: result.config.trials, evalMode: result.config.evalMode };
  }

  /** One figure per backbone the result's plan ran; a backbone without records says why. */
  private perBackbone(result: ExperimentResult, draw: (backbone: Backbone) => PlotlyFigure | string): void {
    for (const backbone of result.config.backbones) {
      const why = result.unavailable.find((u) => u.unit.backbone === backbone)?.message ?? (backbone === "imagenet" ? missingWeightsReason(result.config) : null);
      if (!result.records.some((r) => r.backbone === backbone)) {
        this.md(why ? `**${BACKBONE_LABEL[backbone]}: not run.** ${asSentence(why)}` : `**${BACKBONE_LABEL[backbone]}:** no results in the store for this config yet.`);
        continue;
      }
      const fig = draw(backbone);
      if (typeof fig === "string") this.md(fig);
      else this.show(fig);
    }
  }

  /** The reference figure: test BCE and ROC-AUC per epoch, mean and 95% CI per arm. */
  showLearningCurves(result: ExperimentResult): void {
    this.perBackbone(result, (b) => learningCurves(result.records, this.figureOptions(b, result)));
  }

  /** sigmoid(output bias) per epoch against the positive rate. */
  showBias(result: ExperimentResult): void {
    this.perBackbone(result, (b) => biasCurve(result.records, this.figureOptions(b, result)));
  }

  /** Positive rate minus vanilla per epoch, paired by trial. */
  showDifference(result: ExperimentResult): void {
    this.perBackbone(result, (b) => pairedDifferenceFigure(result.records, this.figureOptions(b, result)));
  }

  /** Per-step training loss over the first epoch (the hockey stick). */
  showStepLoss(result: ExperimentResult): void {
    this.perBackbone(result, (b) => (result.steps.some((s) => s.backbone === b) ? stepLossCurve(result.steps, this.figureOptions(b, result))
      : `**${BACKBONE_LABEL[b]}:** no per-step losses in the store.`));
  }

  /** Expected calibration error and the mean predicted probability per epoch, against the measured p. */
  showCalibration(result: ExperimentResult): void {
    this.perBackbone(result, (b) => (result.records.some((r) => r.backbone === b && r.ece != null) ? calibrationFigure(result.records, this.figureOptions(b, result))
      : `**${BACKBONE_LABEL[b]}:** these records predate the calibration measurements.`));
  }

  /** The hockey stick, measured: steps to catch up (and images seen) and excess loss over the first epoch. */
  showHockeyStick(result: ExperimentResult): void { this.tables(catchUpTables(result), "No trial with both arms' first-epoch steps in the store."); }
  /** The bias sets the mean logit, not its spread: logit mean and SD before any step, test (eval mode) and first training batch (train mode). */
  showLogitSpread(result: ExperimentResult): void {
    this.tables(logitSpreadTables(result), "No epoch-0 records in the store.");
    this.md(logitSpreadFindings(logitSpreadRows(result)).map((line) => `- ${line}`).join("\n"));
  }
  /** Test BCE and ROC-AUC in eval mode beside train mode (evalMode "both"). */
  showEvaluationModes(result: ExperimentResult): void { this.tables(evaluationModeTables(result), "No train-mode evaluation in the store (it needs evalMode \"both\")."); }

  /** Every epoch record of the result, with the reference's column names. */
  showRecords(result: ExperimentResult): void {
    if (result.records.length === 0) return this.md("No epoch records in the store for this config.");
    this.table(resultsTable(result.records), { caption: `Epoch records (${result.dataset === "synthetic" ? "SYNTHETIC data" : "CIFAR-10"}), ${result.dir}` });
  }

  /** Mean and 95% CI per arm and epoch of test BCE and ROC-AUC, then the paired difference. */
  showSummaryTables(result: ExperimentResult, metrics: EpochMetric[] = ["loss", "roc_auc"]): void { this.tables(summaryTables(result, metrics), "No epoch records in the store for this config."); }

  /** The conclusions written from the numbers (experiment/conclusions.ts), for the plans given. */
  conclusions(results: PlanResults): void { this.md(this.conclusionsText(results)); }
  conclusionsText(results: PlanResults): string {
    return writeConclusions(conclusionParts(results), { dataset: this.data.dataset, positiveRate: this.data.positiveRate, positiveClass: this.data.positive.name, preset: this.preset, setting: describeSetting(this.config()) });
  }
  /** The imbalance sweep (notebook 05): every rate's store, trained for what it lacks unless `train` is false (`workers` as for `run`); its figures and tables (viz/sweep_report.ts). */
  sweep(train = true, workers?: ConfigOnWorkers): Promise<SweepReport> { return openSweep(this.preset, this.config("sweep"), this.resultsDir, train, workers); }

  /** Writes each plan's learning curves to reports/learning_curves_<plan>.png and .svg, in one headless Chromium run. */
  async exportLearningCurves(results: PlanResults): Promise<void> {
    const items = Object.entries(results).flatMap(([plan, r]) => (!r ? [] : r.config.backbones.filter((b) => r.records.some((x) => x.backbone === b))
      .flatMap((b) => ["png", "svg"].map((ext) => ({ fig: learningCurves(r.records, this.figureOptions(b, r)), file: `learning_curves_${plan}.${ext}` })))));
    const written = await exportFigures(items);
    this.md(written.length === 0 ? "No figures to export (no results yet)." : `Exported:\n${written.map((f) => `- \`${path.relative(process.cwd(), f)}\``).join("\n")}`);
  }

  // The walkthrough's pieces.
  /** The first `positives` images of the positive class and `others` of the rest, with labels. */
  showSampleImages(positives = 8, others = 16): void { showSampleImages(this.data, positives, others); }
  /** Images per class in the training split, the positive class highlighted; p measured from the labels. */
  classBalanceFigure(): PlotlyFigure { return classBalanceFigure(this.data.train.labels, this.data.positive, this.data.dataset); }

  /** The bias that makes sigmoid(bias) = p, and the losses before training that go with each arm. */
  biasMathsTable(): TableLike { return biasMathsTable(this.data.positiveRate); }

  /** The model table and its parameter count (with the Linear(1000, 1) head). */
  showModelSummary(model = this.config().model, inputSize = this.config().input.crop): void {
    const { table, parameters } = modelSummaryTable(model, inputSize);
    this.table(table, { caption: `EfficientNet-${model.toUpperCase()} + binary head at ${inputSize}x${inputSize} input: ${parameters.toLocaleString("en-US")} parameters` });
  }
}

/**
 * Starts a notebook: engine, preset and data (a status line names each step, with times), the
 * header, and plotly.js in this cell's output, the copy every figure of the saved file draws with.
 */
export async function notebookSetup(title = "bias-init lab"): Promise<Notebook> {
  const status = new StepStatus("setup");
  const backend = await status.step("loading engine", () => initBackend());
  const resultsDir = defaultResultsDir();
  if (fs.existsSync(resultsDir) && !fs.statSync(resultsDir).isDirectory()) throw new ConfigError(`BIAS_INIT_RESULTS: ${resultsDir} is not a folder; point it at a folder`);
  const nb = new Notebook(defaultPreset(backend.kind === "cuda"), backend, resultsDir);
  await status.step(preparationStep(nb.config().data), () => nb.data);
  status.finish();
  showNotebookHeader({ title, config: nb.config(), backend, data: nb.data, resultsDir });
  if (unusedGpuLines(backend).length > 0) nb.md(unusedGpuLines(backend).map((l) => l.trim()).join("  \n")); // a GPU is visible but unused: why
  showPlotlyLibrary();
  return nb;
}
