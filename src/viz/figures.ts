// Plotly figure specs as plain JSON ({data, layout}): pure functions of the records, so they are
// testable without a browser, and any display layer (notebook, HTML report) can render them.
// Every band is a Student-t 95% CI from ../experiment/stats, computed on a scale where it cannot
// leave the metric's range (stats/scales.ts); with one trial there is no band. Diverged and
// incomplete units are left out, and the note under the plot says how many and why.
import { ANALYSIS } from "../config";
import type { DatasetKind } from "../config";
import { CLASS_NAMES } from "../data/cifar10";
import type { EpochRecord, StepRecord } from "../experiment/records";
import { pairedDifference, stepSummary, summarize, summarizeWith } from "../experiment/stats/grouping";
import type { SummaryRow } from "../experiment/stats/grouping";
import { intervalText } from "../experiment/stats/scales";
import { entropyNats, sigmoid } from "../maths";
import type { PlotlyFigure } from "./plotly_figure";
import {
  ARM_STYLE, CALIBRATION_NOTES, DIFFERENCE_NAME, DIFFERENCE_NOTE, FigureOptions, OTHER_CLASS_COLOR, Panel, PositiveRateOptions, armTraces, axis, baseLayout, checkRate, dataLabel,
  horizontalLine, meanWithBand, selectFigureData, titleText, trialsLabel, twoPanelAxes, withNote,
} from "./figure_parts";

export { ARM_STYLE };
export type { FigureOptions, PositiveRateOptions };

/**
 * From scratch in eval mode, torchvision's init leaves the backbone's output ~0, so before any step
 * every test logit equals the bias: the note says so where the records show it (epoch-0 ROC-AUC
 * exactly 0.5 and, where measured, a test-logit SD under 1e-6 in every unit).
 */
function epochZeroNote(records: readonly EpochRecord[], options: FigureOptions): string {
  const start = records.filter((r) => r.epoch === 0);
  if (options.backbone !== "scratch" || options.evalMode === "train" || start.length === 0) return "";
  if (!start.every((r) => r.roc_auc === 0.5 && (r.logit_sd == null || r.logit_sd < 1e-6))) return "";
  const sd = start.every((r) => r.logit_sd != null) ? ` (test-logit SD at most ${Math.max(...start.map((r) => r.logit_sd as number)).toExponential(1)})` : "";
  return `Epoch 0 from scratch in eval mode is the bias alone: at torchvision's init the backbone's output is ~0, so every test logit equals the bias${sd}: ` +
    "ROC-AUC exactly 0.5, BCE that of predicting sigmoid(bias) for every image.";
}

/**
 * The reference's figure: test "Binary Cross Entropy" (left) and "ROC-AUC" (right) against
 * "Epoch", per arm the mean over trials with its 95% CI band; a dashed line at H(p) on the BCE
 * panel marks the loss of the best constant predictor.
 */
export function learningCurves(records: readonly EpochRecord[], options: PositiveRateOptions): PlotlyFigure {
  checkRate("learningCurves", options.positiveRate);
  const { records: selected, excluded } = selectFigureData("learningCurves", records, [], options);
  // Typed by the row type itself: tslab compiles non-strict, where a structural parameter type here
  // fails to check against the generic armTraces() signature.
  const epochOf = (r: SummaryRow): number => r.epoch;
  const hp = horizontalLine(entropyNats(options.positiveRate), `H(p) = ${entropyNats(options.positiveRate).toFixed(3)}`, 1);
  return {
    data: [...armTraces(summarize(selected, "loss"), epochOf, 1), ...armTraces(summarize(selected, "roc_auc"), epochOf, 2)],
    layout: withNote({
      ...baseLayout(titleText("Test metrics by bias initialization", options, trialsLabel(selected)), [hp], true),
      ...twoPanelAxes("Epoch", "Binary Cross Entropy", "ROC-AUC"),
    }, [intervalText([["BCE", "log"], ["ROC-AUC", "logit"]]), excluded, epochZeroNote(selected, options)]),
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
  const inEpoch = steps.filter((s) => s.backbone === options.backbone && s.epoch === epoch);
  if (inEpoch.length === 0) throw new Error(`stepLossCurve: no step records for backbone "${options.backbone}" in epoch ${epoch}`);
  const chosen = selectFigureData("stepLossCurve", [], inEpoch, options);
  const selected = chosen.steps;
  const hp = horizontalLine(entropyNats(options.positiveRate), `H(p) = ${entropyNats(options.positiveRate).toFixed(3)}`, 1);
  return {
    data: armTraces(stepSummary(selected), (r) => r.step, 1),
    layout: withNote({
      ...baseLayout(titleText(`Training loss per step, epoch ${epoch}`, options, trialsLabel(selected)), [hp], true),
      xaxis: axis(`Step (epoch ${epoch})`),
      yaxis: axis("Training Binary Cross Entropy"),
    }, [intervalText([["step BCE", "log"]]), chosen.excluded]),
  };
}

/** sigmoid(output bias) per epoch, per arm mean and band, against the true positive rate. */
export function biasCurve(records: readonly EpochRecord[], options: PositiveRateOptions): PlotlyFigure {
  checkRate("biasCurve", options.positiveRate);
  const { records: selected, excluded } = selectFigureData("biasCurve", records, [], options);
  const rows = summarizeWith(selected, "sigmoid(output_bias_value)", (r) => sigmoid(r.output_bias_value), "logit");
  const p = horizontalLine(options.positiveRate, `positive rate p = ${options.positiveRate.toFixed(3)}`, 1);
  return {
    data: armTraces(rows, (r) => r.epoch, 1),
    layout: withNote({
      ...baseLayout(titleText("Output bias as a probability", options, trialsLabel(selected)), [p], true),
      xaxis: axis("Epoch", { dtick: 1 }),
      yaxis: axis("sigmoid(output bias)"),
    }, [intervalText([["sigmoid(bias)", "logit"]]), excluded]),
  };
}

/**
 * Positive rate minus Vanilla per epoch, matched on trial: BCE (left) and ROC-AUC (right), mean
 * and 95% CI band, with a zero line. A band that excludes zero is a difference the trials support.
 */
export function pairedDifferenceFigure(records: readonly EpochRecord[], options: FigureOptions): PlotlyFigure {
  const { records: selected, excluded } = selectFigureData("pairedDifferenceFigure", records, [], options);
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
    layout: withNote({
      ...layout,
      legend: { title: { text: "Difference" } },
      ...twoPanelAxes("Epoch", "\u0394 Binary Cross Entropy", "\u0394 ROC-AUC"),
    }, [DIFFERENCE_NOTE, excluded]),
  };
}

/**
 * Calibration per epoch: expected calibration error (left) and the mean predicted probability
 * against the measured test positive rate (right), per arm the mean over trials with its band.
 */
export function calibrationFigure(records: readonly EpochRecord[], options: PositiveRateOptions): PlotlyFigure {
  checkRate("calibrationFigure", options.positiveRate);
  const { records: selected, excluded } = selectFigureData("calibrationFigure", records, [], options);
  const epochOf = (r: SummaryRow): number => r.epoch;
  const ece = summarize(selected, "ece");
  if (ece.length === 0) throw new Error(`calibrationFigure: the records of backbone "${options.backbone}" hold no ECE (written before calibration was recorded)`);
  const measured = summarize(selected, "test_positive_rate");
  const p = measured.length > 0 ? measured[0].mean : options.positiveRate;
  const line = horizontalLine(p, `measured test p = ${p.toFixed(3)}`, 2);
  return {
    data: [...armTraces(ece, epochOf, 1), ...armTraces(summarize(selected, "mean_prob"), epochOf, 2)],
    layout: withNote({
      ...baseLayout(titleText("Calibration by bias initialization", options, trialsLabel(selected)), [line], true),
      ...twoPanelAxes("Epoch", `Expected calibration error (${ANALYSIS.eceBins} bins)`, "Mean predicted probability"),
    }, [...CALIBRATION_NOTES, excluded]),
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
