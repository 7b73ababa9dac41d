// The facade the notebooks import: each notebook cell is one or two calls on the object that
// `notebookSetup()` returns. Everything a notebook shows is computed here or below; the notebooks
// hold no logic, and every result comes from the results store, so re-running any cell is safe.
//
//   const nb = await notebookSetup("02 From scratch");   // header: preset, backend, dataset
//   const result = await nb.run("scratch");              // trains only what the store lacks
//   nb.showLearningCurves(result, "scratch");            // the reference figure
//
// Environment: BIAS_INIT_PRESET (smoke | quick | full; default full on CUDA, quick otherwise),
// BIAS_INIT_RESULTS (results store root, default results/), BIAS_INIT_BACKEND (see src/backend.ts).
import * as fs from "fs";
import * as path from "path";
import { Backbone, ConfigOverrides, ExperimentConfig, PresetName, PRESET_CONFIGS, makeConfig } from "./config";
import { BackendInfo, backendLine, initBackend } from "./engine/backend";
import { defaultPreset } from "./experiment/report";
import { ExperimentResult, RunEvent, loadResults, runExperiment } from "./experiment/grid";
import { epochTableHeader, formatDuration, formatEpochRow, formatStep, unitLabel } from "./experiment/progress";
import { pairedDifference, resultsTable, summarize, summaryTable } from "./experiment/stats";
import type { EpochMetric } from "./experiment/records";
import { ConclusionPart, writeConclusions } from "./experiment/conclusions";
import { PreparedData, prepareData } from "./data/prepare";
import { CLASS_NAMES, IMAGE_SIDE } from "./data/cifar10";
import { imageToRgbBytes } from "./data/preprocess";
import { positiveRateBias } from "./model/head";
import { summarizeEfficientNet } from "./model/architecture";
import { entropyNats, sigmoid } from "./maths";
import { TrainingStopped } from "./train/loop";
import { ARM_STYLE, BACKBONE_LABEL, PositiveRateOptions, biasCurve, learningCurves, pairedDifferenceFigure, stepLossCurve } from "./viz/figures";
import {
  LiveProgress, PlotlyFigure, TableLike, TableOptions, ensurePlotlyLibrary, escapeHtml, exportFigure, exportFigures, rgbToPng,
  showBundle, showFigure, showImageGrid, showMarkdown, showTable,
} from "./viz/display";

/** Root of the results store used by the notebooks (env BIAS_INIT_RESULTS, default "results"). */
export const RESULTS_ENV = "BIAS_INIT_RESULTS";

/** The metadata key of the header output; tools/jupyter/run_notebooks.py reads it for page titles. */
export const HEADER_METADATA_KEY = "bias_init";

/**
 * What each notebook trains, as overrides on the preset. The ImageNet and scratch halves share one
 * store (the grid selection is not part of the store's key). The convergence run is longer and
 * has fewer trials; the demo is the walkthrough's tiny hockey-stick run.
 */
export type PlanName = "imagenet" | "scratch" | "convergence" | "demo";

const CONVERGENCE_EPOCHS: Record<PresetName, number> = { full: 20, quick: 6, smoke: 4 };

export function planOverrides(plan: PlanName, preset: PresetName): ConfigOverrides {
  switch (plan) {
    case "imagenet":
      return { backbones: ["imagenet"] };
    case "scratch":
      return { backbones: ["scratch"] };
    case "convergence":
      return { backbones: ["scratch"], epochs: CONVERGENCE_EPOCHS[preset], trials: Math.min(2, PRESET_CONFIGS[preset].trials) };
    case "demo":
      // Twenty steps of the tiny model (batch 32) with a large learning rate: enough for the
      // per-step loss to show the hockey stick in seconds on any backend. The experiment itself
      // uses the preset's model, batch and lr.
      return { model: "tiny", backbones: ["scratch"], trials: 1, epochs: 1, lr: 0.05, trainBatch: 32, data: { trainLimit: 640, testLimit: 256 } };
    default:
      throw new Error(`unknown plan "${String(plan)}" (expected imagenet, scratch, convergence or demo)`);
  }
}

function describeSetting(c: ExperimentConfig): string {
  const input = c.input.resize === null ? `${c.input.crop}x${c.input.crop}` : `resize ${c.input.resize}, crop ${c.input.crop}`;
  const images = (n: number | null) => (n === null ? "all" : String(n));
  return `EfficientNet-${c.model.toUpperCase()} at ${input}, ${images(c.data.trainLimit)} train / ${images(c.data.testLimit)} test images, ` +
    `${c.trials} trial${c.trials === 1 ? "" : "s"} x ${c.epochs} epochs, SGD lr ${c.lr} momentum ${c.momentum}, batch ${c.trainBatch}, ${c.evalMode}-mode evaluation`;
}

/** Units holding every epoch record of their config (epoch 0 included). */
function completeUnits(result: ExperimentResult): number {
  return result.units.filter((u) => u.epochs === result.config.epochs + 1).length;
}

export class Notebook {
  private prepared: PreparedData | null = null;

  constructor(readonly preset: PresetName, readonly backend: BackendInfo, readonly resultsDir: string) {}

  /** The preset's config with a plan's or explicit overrides. */
  config(what: PlanName | ConfigOverrides = {}): ExperimentConfig {
    return makeConfig(this.preset, typeof what === "string" ? planOverrides(what, this.preset) : what);
  }

  /** The preset's data (CIFAR-10 if on disk, else the synthetic stand-in), loaded once. */
  get data(): PreparedData {
    if (this.prepared === null) this.prepared = prepareData(this.config().data);
    return this.prepared;
  }

  get synthetic(): boolean {
    return this.data.dataset === "synthetic";
  }

  /**
   * Trains every unit of the plan that the store does not hold, with a live progress line and a
   * per-epoch table updated in place, then returns all units from the store. Interrupting the
   * kernel asks the loop to stop after the step in flight (it is seen once the loop yields to the
   * event loop) and returns what the store holds; running the cell again resumes from the last epoch.
   */
  async run(what: PlanName | ConfigOverrides = {}): Promise<ExperimentResult> {
    const config = this.config(what);
    const progress = new LiveProgress(epochTableHeader());
    let trained = false;
    let stop = false;
    const onInterrupt = () => {
      stop = true;
    };
    process.on("SIGINT", onInterrupt);
    const started = Date.now();
    try {
      const result = await runExperiment(config, {
        resultsDir: this.resultsDir,
        shouldStop: () => stop,
        onEvent: (e: RunEvent) => {
          trained = true;
          if (e.type === "start") progress.setLine(`training ${e.pending.length} unit(s), ${e.totalSteps} steps, into ${e.dir}`);
          else if (e.type === "step") progress.setLine(formatStep(e, config.epochs));
          else if (e.type === "epoch") progress.addRow(formatEpochRow(e.record));
          else if (e.type === "unit-end" && e.status.state !== "done") progress.addRow(`${unitLabel(e.unit)}: ${e.status.state}${e.status.message ? `: ${e.status.message}` : ""}`);
        },
      });
      const complete = completeUnits(result);
      const blocked = result.unavailable.length > 0 ? `, ${result.unavailable.length} cannot run (see below)` : "";
      if (trained) progress.finish(`done in ${formatDuration((Date.now() - started) / 1000)}: ${complete} of ${result.units.length} unit(s) complete in ${result.dir}${blocked}`);
      else showMarkdown(`Nothing to train: the store (\`${result.dir}\`) holds ${complete} of ${result.units.length} unit(s) of this config complete${blocked}. ` +
        "Delete that folder to train again.");
      this.reportProblems(result);
      return result;
    } catch (e) {
      if (e instanceof TrainingStopped) {
        // An interrupt is not a failure: show and return what the store holds so far.
        progress.finish("stopped by interrupt: run the cell again to resume from the last finished epoch");
        return this.results(what);
      }
      if (trained) progress.finish(`failed: ${(e as Error).message}`);
      throw e;
    } finally {
      process.off("SIGINT", onInterrupt);
    }
  }

  /** What the store holds for a plan, without training anything. */
  results(what: PlanName | ConfigOverrides = {}): ExperimentResult {
    return loadResults(this.config(what), this.resultsDir);
  }

  /** `results`, plus one line saying how complete the stored plan is and which notebook fills it. */
  load(plan: PlanName): ExperimentResult {
    const result = this.results(plan);
    const complete = completeUnits(result);
    const source: Record<PlanName, string> = { imagenet: "01_imagenet_weights", scratch: "02_from_scratch", convergence: "03_convergence", demo: "00_walkthrough" };
    const missing = result.units.length - complete - result.unavailable.length;
    showMarkdown(`**${plan}** (\`${result.dir}\`): ${complete} of ${result.units.length} unit(s) complete` +
      (result.unavailable.length > 0 ? `, ${result.unavailable.length} not runnable` : "") +
      (missing > 0 ? `; run \`${source[plan]}\` to train the other ${missing}.` : "."));
    this.reportProblems(result);
    return result;
  }

  private reportProblems(result: ExperimentResult): void {
    const lines: string[] = [];
    const unavailable = new Map<string, number>();
    for (const u of result.unavailable) unavailable.set(u.message, (unavailable.get(u.message) ?? 0) + 1);
    for (const [message, n] of unavailable) lines.push(`**Not run (${n} unit${n === 1 ? "" : "s"}):** ${message}`);
    for (const u of result.failed) lines.push(`**FAILED:** ${unitLabel(u.unit)}: ${u.message}`);
    if (lines.length > 0) showMarkdown(lines.join("\n\n"));
  }

  // -------------------------------------------------------------------------------------------
  // Output

  show(fig: PlotlyFigure): void {
    showFigure(fig);
  }

  table(table: TableLike, opts: TableOptions = {}): void {
    showTable(table, opts);
  }

  md(markdown: string): void {
    showMarkdown(markdown);
  }

  /** Writes a figure to reports/<file> (.png or .svg) through headless Chromium. */
  export(fig: PlotlyFigure, file: string): Promise<string> {
    return exportFigure(fig, file);
  }

  figureOptions(backbone: Backbone, result?: ExperimentResult): PositiveRateOptions {
    // The run's own measured rate (the demo trains on a subset), else the preset's data.
    return { backbone, dataset: result?.dataset ?? this.data.dataset, positiveRate: result?.positiveRate ?? this.data.positiveRate };
  }

  /** Whether the result holds epoch records of this backbone; says why not otherwise. */
  private has(result: ExperimentResult, backbone: Backbone): boolean {
    if (result.records.some((r) => r.backbone === backbone)) return true;
    const why = result.unavailable.find((u) => u.unit.backbone === backbone);
    showMarkdown(why ? `**${BACKBONE_LABEL[backbone]}: not run.** ${why.message}` : `**${BACKBONE_LABEL[backbone]}:** no results in the store for this config yet.`);
    return false;
  }

  /** The reference figure (test BCE and ROC-AUC per epoch, mean and 95% CI per arm). */
  showLearningCurves(result: ExperimentResult, backbone: Backbone): void {
    if (this.has(result, backbone)) this.show(learningCurves(result.records, this.figureOptions(backbone, result)));
  }

  /** sigmoid(output bias) per epoch against the positive rate. */
  showBias(result: ExperimentResult, backbone: Backbone): void {
    if (this.has(result, backbone)) this.show(biasCurve(result.records, this.figureOptions(backbone, result)));
  }

  /** Positive rate minus vanilla per epoch, paired by trial. */
  showDifference(result: ExperimentResult, backbone: Backbone): void {
    if (this.has(result, backbone)) this.show(pairedDifferenceFigure(result.records, this.figureOptions(backbone, result)));
  }

  /** Every epoch record of the result, with the reference's column names. */
  showRecords(result: ExperimentResult): void {
    if (result.records.length === 0) return showMarkdown("No epoch records in the store for this config.");
    showTable(resultsTable(result.records), { caption: `Epoch records (${result.dataset === "synthetic" ? "SYNTHETIC data" : "CIFAR-10"}), ${result.dir}` });
  }

  /**
   * Writes the reference figure (learning curves) of each result that has records to
   * reports/<prefix>_<backbone>.png and .svg, in one headless Chromium run.
   */
  async exportLearningCurves(parts: Array<{ result: ExperimentResult; backbone: Backbone; name: string }>): Promise<void> {
    const items = parts
      .filter((p) => p.result.records.some((r) => r.backbone === p.backbone))
      .flatMap((p) => {
        const fig = learningCurves(p.result.records, this.figureOptions(p.backbone, p.result));
        return [{ fig, file: `${p.name}.png` }, { fig, file: `${p.name}.svg` }];
      });
    const written = await exportFigures(items);
    showMarkdown(written.length === 0 ? "No figures to export (no results yet)." : `Exported:\n${written.map((f) => `- \`${path.relative(process.cwd(), f)}\``).join("\n")}`);
  }

  /** Per-step training loss over the first epoch (the hockey stick). */
  showStepLoss(result: ExperimentResult, backbone: Backbone): void {
    if (!this.has(result, backbone)) return;
    if (!result.steps.some((s) => s.backbone === backbone)) {
      showMarkdown(`**${BACKBONE_LABEL[backbone]}:** no per-step losses in the store.`);
      return;
    }
    this.show(stepLossCurve(result.steps, this.figureOptions(backbone, result)));
  }

  /** Mean and 95% CI per arm and epoch of test BCE and ROC-AUC, then the paired difference. */
  showSummaryTables(result: ExperimentResult, backbone: Backbone, metrics: EpochMetric[] = ["loss", "roc_auc"]): void {
    const records = result.records.filter((r) => r.backbone === backbone);
    if (records.length === 0) return;
    const label = `${BACKBONE_LABEL[backbone]}${result.dataset === "synthetic" ? " (SYNTHETIC data)" : ""}`;
    for (const metric of metrics) {
      const rows = summarize(records, metric);
      if (rows.length > 0) showTable(summaryTable(rows), { caption: `${label}: ${metric} per arm and epoch, mean and 95% CI over trials` });
    }
    for (const metric of metrics) {
      const rows = pairedDifference(records, metric);
      if (rows.length > 0) showTable(summaryTable(rows), { caption: `${label}: ${metric}, positive rate - vanilla (paired by trial), mean and 95% CI` });
    }
  }

  /**
   * Shows the conclusions written from the numbers (see experiment/conclusions.ts). Pass the
   * results of the plans that exist: {imagenet: ..., scratch: ..., convergence: ...}.
   */
  conclusions(results: Partial<Record<"imagenet" | "scratch" | "convergence", ExperimentResult>>): void {
    showMarkdown(this.conclusionsText(results));
  }

  /** The conclusions as markdown. */
  conclusionsText(results: Partial<Record<"imagenet" | "scratch" | "convergence", ExperimentResult>>): string {
    const labels = { imagenet: "ImageNet weights", scratch: "From scratch", convergence: "From scratch, convergence run" };
    const backbones: Record<keyof typeof labels, Backbone> = { imagenet: "imagenet", scratch: "scratch", convergence: "scratch" };
    const parts: ConclusionPart[] = (Object.keys(labels) as Array<keyof typeof labels>).flatMap((plan) => {
      const result = results[plan];
      if (!result) return [];
      const backbone = backbones[plan];
      const has = result.records.some((r) => r.backbone === backbone);
      return [{
        label: `${labels[plan]} (${result.config.epochs} epochs)`,
        backbone,
        records: result.records,
        positiveRate: result.positiveRate,
        unavailable: has ? null : result.unavailable.find((u) => u.unit.backbone === backbone)?.message ?? null,
      }];
    });
    return writeConclusions(parts, {
      dataset: this.data.dataset, positiveRate: this.data.positiveRate, preset: this.preset, setting: describeSetting(this.config()),
    });
  }

  // -------------------------------------------------------------------------------------------
  // Walkthrough pieces

  /** The first `positives` images of the positive class and `others` of the rest, with labels. */
  showSampleImages(positives = 8, others = 16): void {
    const train = this.data.train;
    const pos = this.data.positive.index;
    const picked: number[] = [];
    let p = 0;
    let o = 0;
    for (let i = 0; i < train.n && (p < positives || o < others); i++) {
      const isPositive = train.labels[i] === pos;
      if (isPositive ? p >= positives : o >= others) continue;
      picked.push(i);
      if (isPositive) p++;
      else o++;
    }
    const images = picked.map((i) => ({
      png: rgbToPng(imageToRgbBytes(train.images, i), IMAGE_SIDE, IMAGE_SIDE),
      caption: CLASS_NAMES[train.labels[i]],
      highlight: train.labels[i] === pos,
    }));
    showImageGrid(images, `Training images (${this.synthetic ? "SYNTHETIC stand-in" : "CIFAR-10"}); framed: the positive class "${this.data.positive.name}"`);
  }

  /** Images per class in the training split, the positive class highlighted; p measured from the labels. */
  classBalanceFigure(): PlotlyFigure {
    const counts = new Array<number>(CLASS_NAMES.length).fill(0);
    const labels = this.data.train.labels;
    for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
    const pos = this.data.positive.index;
    const p = this.data.positiveRate;
    return {
      data: [{
        type: "bar", name: "training images", x: [...CLASS_NAMES], y: counts,
        marker: { color: CLASS_NAMES.map((_, i) => (i === pos ? ARM_STYLE.positive_rate.color : "#adb5bd")) },
      }],
      layout: {
        title: { text: `Training images per class: positive "${this.data.positive.name}" is p = ${p.toFixed(4)} of ${labels.length}${this.synthetic ? " (synthetic data)" : ""}` },
        xaxis: { title: { text: "CIFAR-10 class" } },
        yaxis: { title: { text: "Images" } },
        showlegend: false, height: 380, plot_bgcolor: "white",
      },
    };
  }

  /** The bias that makes sigmoid(bias) = p, and the losses before training that go with each arm. */
  biasMathsTable(): TableLike {
    const p = this.data.positiveRate;
    const b = positiveRateBias(p);
    const rows: Array<[string, string, number]> = [
      ["positive rate p (measured)", "mean of the 0/1 training labels", p],
      ["positive-rate bias b", "log(p / (1 - p))", b],
      ["sigmoid(b)", "1 / (1 + exp(-b)): equals p", sigmoid(b)],
      ["expected initial BCE, positive-rate bias", "H(p) = -p log p - (1 - p) log(1 - p)", entropyNats(p)],
      ["expected initial BCE, vanilla bias (logit ~ 0)", "log 2 = H(0.5)", Math.log(2)],
      ["loss the vanilla arm must shed first", "log 2 - H(p)", Math.log(2) - entropyNats(p)],
    ];
    return { columns: ["quantity", "formula", "value"], values: rows };
  }

  /** The model table and its parameter count (with the Linear(1000, 1) head). */
  showModelSummary(model = this.config().model, inputSize = this.config().input.crop): void {
    const { table, parameters } = this.modelSummaryTable(model, inputSize);
    showTable(table, { caption: `EfficientNet-${model.toUpperCase()} + binary head at ${inputSize}x${inputSize} input: ${parameters.toLocaleString("en-US")} parameters` });
  }

  /** Stage-by-stage summary of a model (no tensors allocated) and its parameter count with the head. */
  modelSummaryTable(model = this.config().model, inputSize = this.config().input.crop): { table: TableLike; parameters: number } {
    const stages = summarizeEfficientNet(model, inputSize);
    const featureCount = stages[stages.length - 1].outChannels;
    const head = featureCount + 1; // Linear(1000, 1): weight + bias
    const values = stages.map((s) => [s.stage, s.description, s.blocks, s.inChannels, s.outChannels, s.outputSize, s.params]);
    values.push(["head", `Linear(${featureCount}, 1), bias = the arm's init`, 1, featureCount, 1, 1, head]);
    const parameters = stages.reduce((a, s) => a + s.params, 0) + head;
    return { table: { columns: ["stage", "layers", "blocks", "in", "out", "output side", "parameters"], values }, parameters };
  }
}

/** A bold, unmissable header: what this notebook runs on. Its output metadata names the dataset for the HTML title. */
function showHeader(title: string, nb: Notebook): void {
  const data = nb.data;
  const config = nb.config();
  const dataLine = data.dataset === "synthetic"
    ? `DATA: SYNTHETIC stand-in, NOT CIFAR-10. ${data.note}`
    : `DATA: CIFAR-10. ${data.note}`;
  const lines = [
    title,
    `preset: ${nb.preset} (env BIAS_INIT_PRESET): ${describeSetting(config)}`,
    backendLine(nb.backend),
    dataLine,
    `results store: ${nb.resultsDir}/ (env ${RESULTS_ENV})`,
  ];
  const warn = data.dataset === "synthetic";
  const html = `<div style="border-left:6px solid ${warn ? "#e63946" : "#1d3557"};padding:4px 10px;margin:4px 0">` +
    `<div style="font-size:1.2em;font-weight:700">${escapeHtml(title)}</div>` +
    `<div>preset <b>${escapeHtml(nb.preset)}</b>: ${escapeHtml(describeSetting(config))}</div>` +
    `<div><code>${escapeHtml(backendLine(nb.backend))}</code></div>` +
    `<div style="${warn ? "color:#e63946;font-weight:700" : "font-weight:600"}">${escapeHtml(dataLine)}</div>` +
    `<div>results store: <code>${escapeHtml(nb.resultsDir)}/</code></div></div>`;
  showBundle({ "text/html": html, "text/plain": lines.join("\n") }, {
    [HEADER_METADATA_KEY]: { title, preset: nb.preset, dataset: data.dataset, backend: nb.backend.kind, positiveRate: data.positiveRate },
  });
}

/**
 * Starts a notebook: picks the backend and the preset, loads the data, shows the header, and sends
 * plotly.js once so every figure after it renders offline. Call it in the first code cell.
 */
export async function notebookSetup(title = "bias-init lab"): Promise<Notebook> {
  const backend = await initBackend();
  const preset = defaultPreset(backend);
  const resultsDir = (process.env[RESULTS_ENV] ?? "").trim() || "results";
  if (fs.existsSync(resultsDir) && !fs.statSync(resultsDir).isDirectory()) {
    throw new Error(`${RESULTS_ENV}=${resultsDir} is not a folder`);
  }
  const nb = new Notebook(preset, backend, resultsDir);
  showHeader(title, nb);
  ensurePlotlyLibrary();
  return nb;
}
