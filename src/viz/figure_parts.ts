// The building blocks of the figures (figures.ts): options, arm styles, mean lines with 95% CI
// bands, reference lines, axes and layout, the note under a plot, and the selection of what to draw.
import { ANALYSIS, ARMS, ARM_LABEL, BACKBONE_LABEL } from "../config";
import type { Arm, Backbone, DatasetKind, EvalMode } from "../config";
import type { EpochRecord, StepRecord } from "../experiment/records";
import type { MeanCi } from "../experiment/stats/student_t";
import { exclusionNote, selectUnits, UnitId } from "../experiment/stats/selection";
import { intervalText } from "../experiment/stats/scales";

export interface FigureOptions {
  backbone: Backbone;
  /** Which data the records come from; "synthetic" puts "(synthetic data)" in the title. */
  dataset: DatasetKind;
  /** Replaces the figure's default title text (backbone, trials and data label are still appended). */
  title?: string;
  /** Units whose training diverged (status "failed"): left out of the means, and the note says so. */
  failed?: readonly UnitId[];
  /** Trials per arm the config asks for: trials without records are counted as not run. */
  trials?: number | null;
  /** The evaluation mode of the records (config.evalMode), for the notes. */
  evalMode?: EvalMode;
}

export interface PositiveRateOptions extends FigureOptions {
  /** Positive rate p of the training labels (0.1 for frog vs not frog). */
  positiveRate: number;
}

export const ARM_STYLE: Readonly<Record<Arm, { name: string; color: string }>> = {
  vanilla: { name: ARM_LABEL.vanilla, color: "#e63946" },
  positive_rate: { name: ARM_LABEL.positive_rate, color: "#1d3557" },
  positive_rate_zero_head: { name: ARM_LABEL.positive_rate_zero_head, color: "#2a9d8f" },
};
export const REFERENCE_LINE_COLOR = "#6c757d";
export const OTHER_CLASS_COLOR = "#adb5bd";
export const DIFFERENCE_NAME = "Positive rate \u2212 Vanilla";
/** The note of every calibration figure (one rate's or the sweep's): how ECE is computed, and its intervals. */
export const CALIBRATION_NOTES: readonly string[] = [
  `ECE: ${ANALYSIS.eceBins} equal-width bins on the predicted probability; per bin |positive rate - mean probability|, weighted by the bin's share of test images.`,
  intervalText([["ECE", "logit"], ["mean probability", "logit"]]),
];
/** How every paired-difference figure's intervals were computed. */
export const DIFFERENCE_NOTE = `${intervalText([["the differences", "natural"]], "paired trials")}, ROC-AUC's cut to [-1, 1]`;
const BAND_ALPHA = 0.2;

/** Which pair of axes a trace or shape belongs to: panel 1 is (x, y), panel n is (xn, yn): 2 is the right of two panels. */
export type Panel = number;
const axisSuffix = (panel: Panel): string => (panel === 1 ? "" : String(panel));

export function rgba(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

export function checkRate(fn: string, p: number): void {
  if (!(p > 0 && p < 1)) throw new Error(`${fn}: positiveRate must be in (0, 1), got ${p}`);
}

/**
 * The records (and steps) of one backbone to draw: refuses an empty selection and records of
 * another dataset, leaves out diverged and incomplete units (stats/selection.ts), and says what it
 * left out in `excluded` ("" when nothing).
 */
export function selectFigureData(fn: string, records: readonly EpochRecord[], steps: readonly StepRecord[], options: FigureOptions): { records: EpochRecord[]; steps: StepRecord[]; excluded: string } {
  const mine = records.filter((r) => r.backbone === options.backbone);
  const mySteps = steps.filter((s) => s.backbone === options.backbone);
  if (mine.length === 0 && mySteps.length === 0) throw new Error(`${fn}: no epoch records for backbone "${options.backbone}"`);
  const other = mine.find((r) => r.dataset !== options.dataset);
  if (other) {
    throw new Error(`${fn}: options.dataset is "${options.dataset}" but a record (trial ${other.trial}, ${other.arm}) has dataset "${other.dataset}"`);
  }
  const selection = selectUnits({ records: mine, steps: mySteps, failed: (options.failed ?? []).filter((u) => u.backbone === options.backbone), trials: options.trials });
  return { records: selection.records, steps: selection.steps, excluded: exclusionNote(selection.tallies, { backbone: options.backbone }) };
}

/** "10 trials", or the count per arm when the arms differ. */
export function trialsLabel(items: readonly { arm: Arm; trial: number }[]): string {
  const counts = ARMS.map((arm) => new Set(items.filter((r) => r.arm === arm).map((r) => r.trial)).size);
  const present = ARMS.filter((_, i) => counts[i] > 0);
  const plural = (n: number): string => `${n} trial${n === 1 ? "" : "s"}`;
  if (new Set(present.map((arm) => counts[ARMS.indexOf(arm)])).size === 1) return plural(counts[ARMS.indexOf(present[0])]);
  return present.map((arm) => `${ARM_STYLE[arm].name} ${plural(counts[ARMS.indexOf(arm)])}`).join(", ");
}

/** What a title ends with: " (synthetic data)" for the synthetic stand-in, nothing for CIFAR-10. */
export function dataLabel(dataset: DatasetKind): string {
  return dataset === "synthetic" ? " (synthetic data)" : "";
}

export function titleText(text: string, options: FigureOptions, trials: string): string {
  return `${options.title ?? text}: ${BACKBONE_LABEL[options.backbone]}, ${trials}${dataLabel(options.dataset)}`;
}

/** A mean line with markers; only the left panel's copy appears in the legend. */
export function meanTrace(xs: number[], rows: readonly MeanCi[], name: string, color: string, group: string, panel: Panel): Record<string, unknown> {
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
export function bandTrace(xs: number[], rows: readonly MeanCi[], color: string, group: string, panel: Panel): Record<string, unknown> | null {
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
export function meanWithBand(xs: number[], rows: readonly MeanCi[], name: string, color: string, group: string, panel: Panel): Array<Record<string, unknown>> {
  const band = bandTrace(xs, rows, color, group, panel);
  const line = meanTrace(xs, rows, name, color, group, panel);
  return band ? [band, line] : [line];
}

/** Per arm, mean lines and bands of rows keyed by arm, with x taken from each row. */
export function armTraces<R extends MeanCi & { arm: Arm }>(rows: readonly R[], xOf: (r: R) => number, panel: Panel): Array<Record<string, unknown>> {
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
export function horizontalLine(y: number, label: string, panel: Panel, dash: "dash" | "dot" = "dash"): { shape: Record<string, unknown>; annotation: Record<string, unknown> } {
  const s = axisSuffix(panel);
  return {
    shape: { type: "line", xref: `x${s} domain`, x0: 0, x1: 1, yref: `y${s}`, y0: y, y1: y, line: { color: REFERENCE_LINE_COLOR, width: 1.5, dash } },
    annotation: {
      xref: `x${s} domain`, x: 0, xanchor: "left", yref: `y${s} domain`, y: 1, yanchor: "bottom", text: label, showarrow: false, font: { color: REFERENCE_LINE_COLOR },
    },
  };
}

export function axis(title: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { title: { text: title }, gridcolor: "#e9ecef", zeroline: false, ...extra };
}

export function baseLayout(title: string, lines: ReturnType<typeof horizontalLine>[], showLegend: boolean): Record<string, unknown> {
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
export function twoPanelAxes(xTitle: string, leftY: string, rightY: string): Record<string, unknown> {
  return {
    xaxis: axis(xTitle, { domain: [0, 0.45], anchor: "y", dtick: 1 }),
    yaxis: axis(leftY, { anchor: "x" }),
    xaxis2: axis(xTitle, { domain: [0.55, 1], anchor: "y2", dtick: 1 }),
    yaxis2: axis(rightY, { anchor: "x2" }),
  };
}


/** Adds a note under the plot (one line per entry, empty entries dropped), making room for it. */
export function withNote(layout: Record<string, unknown>, lines: readonly string[]): Record<string, unknown> {
  const text = lines.filter((l) => l !== "");
  if (text.length === 0) return layout;
  const room = 18 * text.length + 20;
  return {
    ...layout,
    height: (layout.height as number) + room,
    margin: { b: 60 + room },
    annotations: [...(layout.annotations as unknown[]), {
      xref: "paper", yref: "paper", x: 0, y: 0, xanchor: "left", yanchor: "top", yshift: -55, align: "left", showarrow: false,
      text: text.join("<br>"), font: { size: 11, color: REFERENCE_LINE_COLOR },
    }],
  };
}
