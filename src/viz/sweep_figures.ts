// The imbalance sweep's figures (notebooks/05_imbalance_sweep.ipynb), pure functions of a
// SweepResult like figures.ts: learning curves and calibration per rate as small multiples in one
// figure, and quantities against the measured positive rate p (log axis): the test BCE before any
// step with the H(p) and log 2 curves, the hockey stick measured, the paired difference at the last
// epoch. Every prior arm is compared with vanilla (arm - vanilla, matched on trial). Units that
// diverged or hold fewer epochs are left out (stats/selection.ts) and the note under each figure
// counts them.
import { ANALYSIS, ARM_LABEL } from "../config";
import type { Arm } from "../config";
import { entropyNats } from "../maths";
import type { EpochMetric } from "../experiment/records";
import { summarize } from "../experiment/stats/grouping";
import type { SummaryRow } from "../experiment/stats/grouping";
import type { MeanCi } from "../experiment/stats/student_t";
import { intervalText } from "../experiment/stats/scales";
import {
  measuredRate, rateExclusions, sweepArms, sweepCatchUpRows, sweepDifferenceRows, sweepSelection, sweepStartRows,
} from "../experiment/stats/sweep_stats";
import type { Selection } from "../experiment/stats/selection";
import { catchUpDefinition } from "../experiment/stats/tables";
import type { SweepResult } from "../experiment/sweep";
import type { PlotlyFigure } from "./plotly_figure";
import { ARM_STYLE, CALIBRATION_NOTES, DIFFERENCE_NOTE, REFERENCE_LINE_COLOR, armTraces, axis, baseLayout, horizontalLine, titleText, trialsLabel, withNote } from "./figure_parts";

/** A rate with records, as a column of small multiples: its target, measured p and what was left out. */
interface RateColumn {
  target: number;
  p: number;
  excluded: string;
}

function columns(sweep: SweepResult, selection: Selection): RateColumn[] {
  return sweep.points.flatMap(({ rate }) => {
    const p = measuredRate(sweep, rate);
    if (p === null || !selection.records.some((r) => r.target_positive_rate === rate)) return [];
    return [{ target: rate, p, excluded: rateExclusions(sweep, selection, rate) }];
  });
}

function requireRecords(fn: string, sweep: SweepResult, cols: RateColumn[]): void {
  if (cols.length === 0) throw new Error(`${fn}: no rate of the sweep has records in the store (${sweep.points.map((p) => p.rate).join(", ")})`);
}

/** Note lines broken at word boundaries to at most `width` characters, so that a note fits under the figure. */
export function wrapNote(lines: readonly string[], width = 150): string[] {
  return lines.flatMap((line) => {
    const out: string[] = [];
    let current = "";
    for (const word of line.split(" ")) {
      if (current !== "" && current.length + 1 + word.length > width) {
        out.push(current);
        current = word;
      } else current = current === "" ? word : `${current} ${word}`;
    }
    return current === "" ? out : [...out, current];
  });
}

const rateLabel = (c: { target: number; p: number }): string => `p = ${c.p.toFixed(4)} (target ${c.target})`;

/** The axes of a grid of panels, `rows` x `cols`, panel r * cols + c + 1; titles on the left column and the bottom row. */
function gridAxes(rows: number, cols: number, xTitle: string, yTitles: readonly string[], extraX: Record<string, unknown> = {}, extraY: ReadonlyArray<Record<string, unknown>> = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const gapX = 0.06 / cols;
  const gapY = 0.12 / rows;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const n = r * cols + c + 1;
      const s = n === 1 ? "" : String(n);
      const top = 1 - r / rows;
      out[`xaxis${s}`] = axis(r === rows - 1 ? xTitle : "", { domain: [c / cols + gapX, (c + 1) / cols - gapX], anchor: `y${s}`, ...extraX });
      out[`yaxis${s}`] = axis(c === 0 ? yTitles[r] : "", { domain: [top - 1 / rows + gapY, top - gapY], anchor: `x${s}`, ...extraY[r] });
    }
  }
  return out;
}

/** A title above each column of the top row, over the reference lines' labels. */
function columnTitles(labels: readonly string[]): Array<Record<string, unknown>> {
  return labels.map((text, c) => ({ xref: `x${c === 0 ? "" : c + 1} domain`, x: 0.5, xanchor: "center", yref: `y${c === 0 ? "" : c + 1} domain`, y: 1,
    yanchor: "bottom", yshift: 20, text: `<b>${text}</b>`, showarrow: false }));
}

/** Small multiples: a row per metric, a column per rate, per arm mean and band over trials. */
interface GridRow {
  metric: EpochMetric;
  label: string;
  /** A reference line per panel of the row. */
  line?: (c: RateColumn) => { y: number; label: string } | null;
  /** The row's y range from the largest mean it shows (null: Plotly's autorange, bands included). */
  range?: (largestMean: number) => [number, number];
}

function perRateGrid(sweep: SweepResult, fn: string, title: string, metrics: readonly GridRow[], notes: readonly string[]): PlotlyFigure {
  const selection = sweepSelection(sweep);
  const cols = columns(sweep, selection);
  requireRecords(fn, sweep, cols);
  const epochOf = (r: SummaryRow): number => r.epoch;
  const data: Array<Record<string, unknown>> = [];
  const lines: Array<ReturnType<typeof horizontalLine>> = [];
  const largest = metrics.map(() => 0);
  metrics.forEach(({ metric, line }, row) => cols.forEach((col, c) => {
    const panel = row * cols.length + c + 1;
    const rows = summarize(selection.records.filter((r) => r.target_positive_rate === col.target), metric);
    data.push(...armTraces(rows, epochOf, panel));
    largest[row] = Math.max(largest[row], ...rows.map((r) => r.mean));
    const l = line?.(col);
    if (l) lines.push(horizontalLine(l.y, l.label, panel));
  }));
  const ranges = metrics.map((m, row) => (m.range ? { range: m.range(largest[row]) } : {}));
  const layout = baseLayout(titleText(title, { backbone: sweep.config.backbones[0], dataset: sweep.dataset }, trialsLabel(selection.records)), lines, true);
  const excluded = cols.filter((c) => c.excluded !== "").map((c) => `${rateLabel(c)}: ${c.excluded}`);
  return {
    data,
    layout: withNote({
      ...layout, height: 300 * metrics.length + 60,
      annotations: [...(layout.annotations as unknown[]), ...columnTitles(cols.map(rateLabel))],
      ...gridAxes(metrics.length, cols.length, "Epoch", metrics.map((m) => m.label), { dtick: 1 }, ranges),
    }, wrapNote([...notes, ...excluded])),
  };
}

/** Where the BCE panels' axes end, as a multiple of the largest mean shown. */
const BCE_AXIS_TOP = 1.3;

/** Test BCE (top) and ROC-AUC (bottom) per epoch, a column per rate, with H(measured p) on each BCE panel. */
export function sweepLearningCurves(sweep: SweepResult): PlotlyFigure {
  return perRateGrid(sweep, "sweepLearningCurves", "Test metrics by bias initialization and positive rate", [
    { metric: "loss", label: "Binary Cross Entropy", line: (c) => ({ y: entropyNats(c.p), label: `H(p) = ${entropyNats(c.p).toFixed(3)}` }), range: (m) => [0, BCE_AXIS_TOP * Math.max(m, Math.LN2)] },
    { metric: "roc_auc", label: "ROC-AUC", range: () => [0, 1.02] },
  ], [intervalText([["BCE", "log"], ["ROC-AUC", "logit"]]),
    `The BCE axes end at ${BCE_AXIS_TOP} x the largest mean (at least log 2): with few trials the log-scale bands can reach far higher and are cut there.`]);
}

/** ECE (top) and the mean predicted probability (bottom) per epoch, a column per rate, the measured test p on each probability panel. */
export function sweepCalibrationFigure(sweep: SweepResult): PlotlyFigure {
  const testRate = (target: number): number | null => sweep.points.find((p) => p.rate === target)?.result.testPositiveRate ?? null;
  return perRateGrid(sweep, "sweepCalibrationFigure", "Calibration by bias initialization and positive rate", [
    { metric: "ece", label: `ECE (${ANALYSIS.eceBins} bins)`, range: () => [0, 1.02] },
    { metric: "mean_prob", label: "Mean predicted probability", range: () => [0, 1.02], line: (c) => {
      const q = testRate(c.target);
      return q === null ? null : { y: q, label: `test p = ${q.toFixed(4)}` };
    } },
  ], [...CALIBRATION_NOTES]);
}

/** Asymmetric error bars from 95% CIs (none where a point has no interval). */
function errorBars(rows: readonly MeanCi[], color: string): Record<string, unknown> {
  return {
    type: "data", symmetric: false, visible: true, color, thickness: 1.5, width: 4,
    array: rows.map((r) => (r.ci_high === null ? null : r.ci_high - r.mean)),
    arrayminus: rows.map((r) => (r.ci_low === null ? null : r.mean - r.ci_low)),
  };
}

/** One arm's points against p, mean and error bars, on `panel`. */
function pointsAgainstP(points: ReadonlyArray<{ p: number; ci: MeanCi }>, name: string, color: string, group: string, panel: number): Record<string, unknown> {
  const s = panel === 1 ? "" : String(panel);
  const sorted = [...points].sort((a, b) => a.p - b.p);
  return {
    type: "scatter", mode: "lines+markers", name, legendgroup: group, showlegend: panel === 1,
    x: sorted.map((q) => q.p), y: sorted.map((q) => q.ci.mean), error_y: errorBars(sorted.map((q) => q.ci), color),
    line: { color, width: 2 }, marker: { color, size: 8 }, xaxis: `x${s}`, yaxis: `y${s}`,
  };
}

/** A log axis of p with a tick at each measured rate. */
function pAxis(ps: readonly number[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const sorted = [...ps].sort((a, b) => a - b);
  return axis("Positive rate p (measured, log scale)", {
    type: "log", tickvals: sorted, ticktext: sorted.map((p) => p.toFixed(3)),
    range: [Math.log10(sorted[0] / 1.6), Math.log10(sorted[sorted.length - 1] * 1.6)], ...extra,
  });
}

/** Two side-by-side panels against p. */
function twoPanelsAgainstP(ps: readonly number[], leftY: string, rightY: string): Record<string, unknown> {
  return {
    xaxis: pAxis(ps, { domain: [0, 0.45], anchor: "y" }), yaxis: axis(leftY, { anchor: "x" }),
    xaxis2: pAxis(ps, { domain: [0.55, 1], anchor: "y2" }), yaxis2: axis(rightY, { anchor: "x2" }),
  };
}

const differenceName = (arm: Arm): string => `${ARM_LABEL[arm]} \u2212 ${ARM_LABEL.vanilla}`;

function allExclusions(sweep: SweepResult, selection: Selection): string[] {
  return columns(sweep, selection).filter((c) => c.excluded !== "").map((c) => `${rateLabel(c)}: ${c.excluded}`);
}

/**
 * The test BCE before any step against p, per arm (mean and 95% CI over trials), with the curve
 * H(p) (the loss of predicting p for every image: where the positive-rate arms start) and log 2
 * (predicting 0.5: about where the vanilla arm starts). The gap between them grows as p falls.
 */
export function sweepStartFigure(sweep: SweepResult): PlotlyFigure {
  const selection = sweepSelection(sweep);
  const rows = sweepStartRows(sweep, selection);
  if (rows.length === 0) throw new Error("sweepStartFigure: no epoch-0 records in the sweep's stores");
  const ps = [...new Set(rows.map((r) => r.p))];
  const lo = Math.min(...ps) / 1.6;
  const hi = Math.max(...ps) * 1.6;
  const grid = Array.from({ length: 61 }, (_, i) => lo * Math.pow(hi / lo, i / 60));
  const curve = (name: string, y: number[], dash: string): Record<string, unknown> => ({
    type: "scatter", mode: "lines", name, x: grid, y, line: { color: REFERENCE_LINE_COLOR, width: 1.5, dash }, hoverinfo: "name+x+y",
  });
  const arms = sweepArms(rows);
  return {
    data: [
      curve("H(p): predicting p for every image", grid.map(entropyNats), "dash"), curve("log 2: predicting 0.5", grid.map(() => Math.LN2), "dot"),
      ...arms.map((arm) => pointsAgainstP(rows.filter((r) => r.arm === arm).map((r) => ({ p: r.p, ci: r })), ARM_STYLE[arm].name, ARM_STYLE[arm].color, arm, 1)),
    ],
    layout: withNote({
      ...baseLayout(titleText("Test BCE before any step against the positive rate", { backbone: sweep.config.backbones[0], dataset: sweep.dataset }, trialsLabel(selection.records)), [], true),
      xaxis: pAxis(ps), yaxis: axis("Test Binary Cross Entropy at epoch 0", { rangemode: "tozero" }),
    }, wrapNote([`Gap log 2 - H(p): ${ps.sort((a, b) => b - a).map((p) => `${(Math.LN2 - entropyNats(p)).toFixed(3)} nats at p = ${p.toFixed(4)}`).join(", ")}.`,
      intervalText([["BCE", "log"]]), ...allExclusions(sweep, selection)])),
  };
}

/**
 * The hockey stick, measured, against p: steps to catch up (left; over the pairs that caught up
 * within the first epoch, counted in the note) and excess loss (right), per prior arm against
 * vanilla, mean and 95% CI over paired trials.
 */
export function sweepHockeyStickFigure(sweep: SweepResult): PlotlyFigure {
  const selection = sweepSelection(sweep);
  const rows = sweepCatchUpRows(sweep, selection);
  if (rows.length === 0) throw new Error("sweepHockeyStickFigure: no trial of the sweep has both arms' first-epoch steps");
  const arms = sweepArms(rows);
  const data = arms.flatMap((arm) => {
    const mine = rows.filter((r) => r.arm === arm);
    const name = `Vanilla vs ${ARM_LABEL[arm].toLowerCase()}`;
    const caught = mine.flatMap((r) => (r.steps_to_catch_up === null ? [] : [{ p: r.p, ci: r.steps_to_catch_up }]));
    return [...(caught.length > 0 ? [pointsAgainstP(caught, name, ARM_STYLE[arm].color, arm, 1)] : []),
      { ...pointsAgainstP(mine.map((r) => ({ p: r.p, ci: r.excess_loss })), name, ARM_STYLE[arm].color, arm, 2), showlegend: caught.length === 0 }];
  });
  const counts = rows.map((r) => `p = ${r.p.toFixed(4)}${arms.length > 1 ? ` (vs ${ARM_LABEL[r.arm].toLowerCase()})` : ""}: ${r.caught_up} of ${r.pairs} pair${r.pairs === 1 ? "" : "s"} caught up within epoch 1`);
  const ps = [...new Set(rows.map((r) => r.p))];
  return {
    data,
    layout: withNote({
      ...baseLayout(titleText("The hockey stick against the positive rate", { backbone: sweep.config.backbones[0], dataset: sweep.dataset }, trialsLabel(selection.steps)),
        [horizontalLine(0, "no excess", 2, "dot")], true),
      legend: { title: { text: "Pair" } },
      ...twoPanelsAgainstP(ps, `Steps to catch up (x ${sweep.config.trainBatch} = images)`, "Excess loss (nats x steps)"),
    }, wrapNote([catchUpDefinition(sweep.config.trainBatch), `${counts.join("; ")}.`, intervalText([["both", "natural"]], "paired trials"), ...allExclusions(sweep, selection)])),
  };
}

/** The paired difference arm - vanilla at the last epoch against p: test BCE (left) and ROC-AUC (right), with zero lines. */
export function sweepDifferenceFigure(sweep: SweepResult): PlotlyFigure {
  const selection = sweepSelection(sweep);
  const loss = sweepDifferenceRows(sweep, "loss", selection);
  const auc = sweepDifferenceRows(sweep, "roc_auc", selection);
  if (loss.length === 0) throw new Error("sweepDifferenceFigure: no trial of the sweep has both arms at its last epoch");
  const arms = sweepArms(loss);
  const data = arms.flatMap((arm) => [1, 2].map((panel) => pointsAgainstP((panel === 1 ? loss : auc).filter((r) => r.arm === arm).map((r) => ({ p: r.p, ci: r })),
    differenceName(arm), ARM_STYLE[arm].color, arm, panel)));
  const epochs = [...new Set(loss.map((r) => r.epoch))].sort((a, b) => a - b);
  return {
    data,
    layout: withNote({
      ...baseLayout(titleText(`Paired difference after the last epoch (${epochs.join(", ")}) against the positive rate`, { backbone: sweep.config.backbones[0], dataset: sweep.dataset },
        trialsLabel(selection.records)), [horizontalLine(0, "no difference", 1, "dot"), horizontalLine(0, "no difference", 2, "dot")], true),
      legend: { title: { text: "Difference (matched on trial)" } },
      ...twoPanelsAgainstP([...new Set(loss.map((r) => r.p))], "\u0394 test Binary Cross Entropy", "\u0394 test ROC-AUC"),
    }, wrapNote([DIFFERENCE_NOTE, ...allExclusions(sweep, selection)])),
  };
}
