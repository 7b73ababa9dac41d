// Plotly figure specs as plain JSON ({data, layout}): pure functions of the records, so they are
// testable without a browser, and any display layer (notebook, HTML report) can render them.
// Every band is the Student-t 95% CI from ../experiment/stats; with one trial there is no band.
import { ARMS, BACKBONE_LABEL } from "../config";
import type { Arm, Backbone, DatasetKind } from "../config";
import { CLASS_NAMES } from "../data/cifar10";
import type { EpochRecord, StepRecord } from "../experiment/records";
import { pairedDifference, stepSummary, summarize, summarizeWith } from "../experiment/stats/grouping";
import type { SummaryRow } from "../experiment/stats/grouping";
import type { MeanCi } from "../experiment/stats/student_t";
import { entropyNats, sigmoid } from "../maths";
import type { PlotlyFigure } from "./plotly_figure";

export interface FigureOptions {
  backbone: Backbone;
  /** Which data the records come from; "synthetic" puts "(synthetic data)" in the title. */
  dataset: DatasetKind;
  /** Replaces the figure's default title text (backbone, trials and data label are still appended). */
  title?: string;
}

export interface PositiveRateOptions extends FigureOptions {
  /** Positive rate p of the training labels (0.1 for frog vs not frog). */
  positiveRate: number;
}

export const ARM_STYLE: Readonly<Record<Arm, { name: string; color: string }>> = {
  vanilla: { name: "Vanilla", color: "#e63946" },
  positive_rate: { name: "Positive rate", color: "#1d3557" },
};
const REFERENCE_LINE_COLOR = "#6c757d";
const OTHER_CLASS_COLOR = "#adb5bd";
const DIFFERENCE_NAME = "Positive rate \u2212 Vanilla";
const BAND_ALPHA = 0.2;

/** Which pair of axes a trace or shape belongs to: the left panel (x, y) or the right (x2, y2). */
type Panel = 1 | 2;
const axisSuffix = (panel: Panel): string => (panel === 1 ? "" : "2");

function rgba(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function checkRate(fn: string, p: number): void {
  if (!(p > 0 && p < 1)) throw new Error(`${fn}: positiveRate must be in (0, 1), got ${p}`);
}

/** The records of one backbone; refuses an empty selection and records of another dataset. */
function selectEpochRecords(fn: string, records: readonly EpochRecord[], options: FigureOptions): EpochRecord[] {
  const selected = records.filter((r) => r.backbone === options.backbone);
  if (selected.length === 0) throw new Error(`${fn}: no epoch records for backbone "${options.backbone}"`);
  const other = selected.find((r) => r.dataset !== options.dataset);
  if (other) {
    throw new Error(`${fn}: options.dataset is "${options.dataset}" but a record (trial ${other.trial}, ${other.arm}) has dataset "${other.dataset}"`);
  }
  return selected;
}

/** "10 trials", or the count per arm when the arms differ. */
function trialsLabel(items: readonly { arm: Arm; trial: number }[]): string {
  const counts = ARMS.map((arm) => new Set(items.filter((r) => r.arm === arm).map((r) => r.trial)).size);
  const present = ARMS.filter((_, i) => counts[i] > 0);
  const plural = (n: number): string => `${n} trial${n === 1 ? "" : "s"}`;
  if (new Set(present.map((arm) => counts[ARMS.indexOf(arm)])).size === 1) return plural(counts[ARMS.indexOf(present[0])]);
  return present.map((arm) => `${ARM_STYLE[arm].name} ${plural(counts[ARMS.indexOf(arm)])}`).join(", ");
}

/** What a title ends with: " (synthetic data)" for the synthetic stand-in, nothing for CIFAR-10. */
function dataLabel(dataset: DatasetKind): string {
  return dataset === "synthetic" ? " (synthetic data)" : "";
}

function titleText(text: string, options: FigureOptions, trials: string): string {
  return `${options.title ?? text}: ${BACKBONE_LABEL[options.backbone]}, ${trials}${dataLabel(options.dataset)}`;
}

/** A mean line with markers; only the left panel's copy appears in the legend. */
function meanTrace(xs: number[], rows: readonly MeanCi[], name: string, color: string, group: string, panel: Panel): Record<string, unknown> {
  return {
    type: "scatter",
    mode: "lines+markers",
    name,
    legendgroup: group,
    showlegend: panel === 1,
    x: xs,
    y: rows.map((r) => r.mean),
    line: { color, width: 2 },
    marker: { color, size: 6 },
    xaxis: `x${axisSuffix(panel)}`,
    yaxis: `y${axisSuffix(panel)}`,
  };
}

/**
 * The 95% CI as a filled polygon (upper edge forward, lower edge back). Points without an
 * interval (one trial) split the band into segments separated by nulls, which Plotly closes
 * one by one. No points with an interval: no band (null).
 */
function bandTrace(xs: number[], rows: readonly MeanCi[], color: string, group: string, panel: Panel): Record<string, unknown> | null {
  const x: Array<number | null> = [];
  const y: Array<number | null> = [];
  let segment: number[] = [];
  const close = (): void => {
    if (segment.length === 0) return;
    if (x.length > 0) {
      x.push(null);
      y.push(null);
    }
    const there = segment.map((i) => ({ x: xs[i], y: rows[i].ci_high }));
    const back = [...segment].reverse().map((i) => ({ x: xs[i], y: rows[i].ci_low }));
    for (const point of [...there, ...back]) {
      x.push(point.x);
      y.push(point.y);
    }
    segment = [];
  };
  rows.forEach((r, i) => (r.ci_low === null || r.ci_high === null ? close() : segment.push(i)));
  close();
  if (x.length === 0) return null;
  return {
    type: "scatter",
    mode: "lines",
    x,
    y,
    fill: "toself",
    fillcolor: rgba(color, BAND_ALPHA),
    line: { color: rgba(color, 0), width: 0 },
    hoverinfo: "skip",
    showlegend: false,
    legendgroup: group,
    xaxis: `x${axisSuffix(panel)}`,
    yaxis: `y${axisSuffix(panel)}`,
  };
}

/** Band first, then the line on top of it. */
function meanWithBand(xs: number[], rows: readonly MeanCi[], name: string, color: string, group: string, panel: Panel): Array<Record<string, unknown>> {
  const band = bandTrace(xs, rows, color, group, panel);
  const line = meanTrace(xs, rows, name, color, group, panel);
  return band ? [band, line] : [line];
}

/** Per arm, mean lines and bands of rows keyed by arm, with x taken from each row. */
function armTraces<R extends MeanCi & { arm: Arm }>(rows: readonly R[], xOf: (r: R) => number, panel: Panel): Array<Record<string, unknown>> {
  return ARMS.flatMap((arm) => {
    const armRows = rows.filter((r) => r.arm === arm);
    if (armRows.length === 0) return [];
    return meanWithBand(armRows.map(xOf), armRows, ARM_STYLE[arm].name, ARM_STYLE[arm].color, arm, panel);
  });
}

/**
 * A dashed horizontal line across a panel, its label (in the line's colour) above the panel's
 * top-left corner: outside the plot area, so no curve can run through it. At the line's own height
 * it sat on the curves that converge to that line (H(p), the positive rate, zero difference).
 */
function horizontalLine(y: number, label: string, panel: Panel, dash: "dash" | "dot" = "dash"): { shape: Record<string, unknown>; annotation: Record<string, unknown> } {
  const s = axisSuffix(panel);
  return {
    shape: { type: "line", xref: `x${s} domain`, x0: 0, x1: 1, yref: `y${s}`, y0: y, y1: y, line: { color: REFERENCE_LINE_COLOR, width: 1.5, dash } },
    annotation: {
      xref: `x${s} domain`, x: 0, xanchor: "left", yref: `y${s} domain`, y: 1, yanchor: "bottom", text: label, showarrow: false, font: { color: REFERENCE_LINE_COLOR },
    },
  };
}

function axis(title: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { title: { text: title }, gridcolor: "#e9ecef", zeroline: false, ...extra };
}

function baseLayout(title: string, lines: ReturnType<typeof horizontalLine>[], showLegend: boolean): Record<string, unknown> {
  return {
    title: { text: title },
    legend: { title: { text: "Bias initialization" } },
    showlegend: showLegend,
    plot_bgcolor: "white",
    paper_bgcolor: "white",
    hovermode: "closest",
    height: 420,
    shapes: lines.map((l) => l.shape),
    annotations: lines.map((l) => l.annotation),
  };
}

/** Side-by-side panels: left x/y, right x2/y2. */
function twoPanelAxes(xTitle: string, leftY: string, rightY: string): Record<string, unknown> {
  return {
    xaxis: axis(xTitle, { domain: [0, 0.45], anchor: "y", dtick: 1 }),
    yaxis: axis(leftY, { anchor: "x" }),
    xaxis2: axis(xTitle, { domain: [0.55, 1], anchor: "y2", dtick: 1 }),
    yaxis2: axis(rightY, { anchor: "x2" }),
  };
}

/**
 * The reference's figure: test "Binary Cross Entropy" (left) and "ROC-AUC" (right) against
 * "Epoch", per arm the mean over trials with its 95% CI band; a dashed line at H(p) on the BCE
 * panel marks the loss of the best constant predictor.
 */
export function learningCurves(records: readonly EpochRecord[], options: PositiveRateOptions): PlotlyFigure {
  checkRate("learningCurves", options.positiveRate);
  const selected = selectEpochRecords("learningCurves", records, options);
  // Typed by the row type itself: tslab compiles non-strict, where a structural parameter type here
  // fails to check against the generic armTraces() signature.
  const epochOf = (r: SummaryRow): number => r.epoch;
  const hp = horizontalLine(entropyNats(options.positiveRate), `H(p) = ${entropyNats(options.positiveRate).toFixed(3)}`, 1);
  return {
    data: [...armTraces(summarize(selected, "loss"), epochOf, 1), ...armTraces(summarize(selected, "roc_auc"), epochOf, 2)],
    layout: {
      ...baseLayout(titleText("Test metrics by bias initialization", options, trialsLabel(selected)), [hp], true),
      ...twoPanelAxes("Epoch", "Binary Cross Entropy", "ROC-AUC"),
    },
  };
}

export interface StepLossOptions extends PositiveRateOptions {
  /** Which epoch's steps to show (default 1: the first, where the hockey stick is). */
  epoch?: number;
}

/**
 * Training loss per step within one epoch (the first by default), per arm mean and band: the
 * vanilla arm starts near ln 2 and drops (the hockey stick); the positive-rate arm starts at H(p).
 */
export function stepLossCurve(steps: readonly StepRecord[], options: StepLossOptions): PlotlyFigure {
  checkRate("stepLossCurve", options.positiveRate);
  const epoch = options.epoch ?? 1;
  const selected = steps.filter((s) => s.backbone === options.backbone && s.epoch === epoch);
  if (selected.length === 0) throw new Error(`stepLossCurve: no step records for backbone "${options.backbone}" in epoch ${epoch}`);
  const hp = horizontalLine(entropyNats(options.positiveRate), `H(p) = ${entropyNats(options.positiveRate).toFixed(3)}`, 1);
  return {
    data: armTraces(stepSummary(selected), (r) => r.step, 1),
    layout: {
      ...baseLayout(titleText(`Training loss per step, epoch ${epoch}`, options, trialsLabel(selected)), [hp], true),
      xaxis: axis(`Step (epoch ${epoch})`),
      yaxis: axis("Training Binary Cross Entropy"),
    },
  };
}

/** sigmoid(output bias) per epoch, per arm mean and band, against the true positive rate. */
export function biasCurve(records: readonly EpochRecord[], options: PositiveRateOptions): PlotlyFigure {
  checkRate("biasCurve", options.positiveRate);
  const selected = selectEpochRecords("biasCurve", records, options);
  const rows = summarizeWith(selected, "sigmoid(output_bias_value)", (r) => sigmoid(r.output_bias_value));
  const p = horizontalLine(options.positiveRate, `positive rate p = ${options.positiveRate.toFixed(3)}`, 1);
  return {
    data: armTraces(rows, (r) => r.epoch, 1),
    layout: {
      ...baseLayout(titleText("Output bias as a probability", options, trialsLabel(selected)), [p], true),
      xaxis: axis("Epoch", { dtick: 1 }),
      yaxis: axis("sigmoid(output bias)"),
    },
  };
}

/**
 * Positive rate minus Vanilla per epoch, matched on trial: BCE (left) and ROC-AUC (right), mean
 * and 95% CI band, with a zero line. A band that excludes zero is a difference the trials support.
 */
export function pairedDifferenceFigure(records: readonly EpochRecord[], options: FigureOptions): PlotlyFigure {
  const selected = selectEpochRecords("pairedDifferenceFigure", records, options);
  const color = ARM_STYLE.positive_rate.color;
  const panel = (metric: "loss" | "roc_auc", which: Panel): Array<Record<string, unknown>> => {
    const rows = pairedDifference(selected, metric);
    return meanWithBand(rows.map((r) => r.epoch), rows, DIFFERENCE_NAME, color, "difference", which);
  };
  const vanillaTrials = new Set(selected.filter((r) => r.arm === "vanilla").map((r) => r.trial));
  const paired = new Set(selected.filter((r) => r.arm === "positive_rate" && vanillaTrials.has(r.trial)).map((r) => r.trial)).size;
  if (paired === 0) throw new Error(`pairedDifferenceFigure: no trial of backbone "${options.backbone}" has both arms`);
  const layout = baseLayout(
    titleText(DIFFERENCE_NAME, options, `${paired} paired trial${paired === 1 ? "" : "s"}`),
    [horizontalLine(0, "no difference", 1, "dot"), horizontalLine(0, "no difference", 2, "dot")],
    true,
  );
  return {
    data: [...panel("loss", 1), ...panel("roc_auc", 2)],
    layout: {
      ...layout,
      legend: { title: { text: "Difference" } },
      ...twoPanelAxes("Epoch", "\u0394 Binary Cross Entropy", "\u0394 ROC-AUC"),
    },
  };
}

/**
 * Training images per CIFAR-10 class (`labels` are the 0..9 class labels), the positive class's
 * bar highlighted, and the positive rate p measured from the labels in the title.
 */
export function classBalanceFigure(labels: ArrayLike<number>, positive: { index: number; name: string }, dataset: DatasetKind): PlotlyFigure {
  if (labels.length === 0) throw new Error("classBalanceFigure: no labels");
  const counts = new Array<number>(CLASS_NAMES.length).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const p = counts[positive.index] / labels.length;
  return {
    data: [{
      type: "bar", name: "training images", x: [...CLASS_NAMES], y: counts,
      marker: { color: CLASS_NAMES.map((_, i) => (i === positive.index ? ARM_STYLE.positive_rate.color : OTHER_CLASS_COLOR)) },
    }],
    layout: {
      title: { text: `Training images per class: positive "${positive.name}" is p = ${p.toFixed(4)} of ${labels.length}${dataLabel(dataset)}` },
      xaxis: { title: { text: "CIFAR-10 class" } },
      yaxis: { title: { text: "Images" } },
      showlegend: false, height: 380, plot_bgcolor: "white",
    },
  };
}
