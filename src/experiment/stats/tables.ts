// danfojs tables for display: every epoch record with the reference's column names, rows of the
// statistics as a DataFrame, and the tables the notebooks show, each with a caption that states how
// its intervals were computed and which units it left out.
import * as dfd from "danfojs-node";
import { conditionOf } from "../records";
import type { EpochMetric, EpochRecord } from "../records";
import type { ExperimentResult } from "../grid";
import { ANALYSIS, BACKBONE_LABEL } from "../../config";
import type { Arm, Backbone } from "../../config";
import { checkUnique, compareKeys, pairedDifference, PairedRow, stepSummary, StepSummaryRow, summarize, summarizeWith, SummaryRow } from "./grouping";
import { catchUpPerTrial, catchUpSummary } from "./hockey_stick";
import { differenceBound, intervalText, METRIC_SCALE } from "./scales";
import { exclusionNote, selectResult, Selection } from "./selection";
import { crossEntropyNats, entropyNats, sigmoid } from "../../maths";

/** Column order of `resultsTable`: the reference's CSV columns first, then what this project adds. */
export const RESULTS_COLUMNS = [
  "loss", "roc_auc", "type", "n_epochs", "output_bias_value", "trial_idx",
  "pretrained", "seed", "dataset", "backend", "train_loss", "wall_s", "images_per_s",
  "ece", "mean_prob", "test_positive_rate", "logit_mean", "logit_sd", "first_batch_logit_mean", "first_batch_logit_sd", "first_batch_positive_rate",
  "loss_train_mode", "roc_auc_train_mode",
] as const;

/**
 * All epoch records as one DataFrame with the reference's column names (`type` is the arm,
 * `n_epochs` the epoch, `trial_idx` the trial) plus `pretrained` (ImageNet backbone), run details
 * and the later metrics (null where a record predates them). Rows sorted by backbone, arm, trial, epoch.
 */
export function resultsTable(records: readonly EpochRecord[]): dfd.DataFrame {
  checkUnique(records, "resultsTable");
  const sorted = [...records].sort((a, b) => compareKeys([a.backbone, a.arm, a.trial, a.epoch], [b.backbone, b.arm, b.trial, b.epoch]));
  if (sorted.length === 0) return new dfd.DataFrame([], { columns: [...RESULTS_COLUMNS] });
  const renamed: Record<string, (r: EpochRecord) => unknown> = {
    type: (r) => r.arm, n_epochs: (r) => r.epoch, trial_idx: (r) => r.trial, pretrained: (r) => r.backbone === "imagenet",
  };
  const data: Record<string, unknown[]> = {};
  for (const c of RESULTS_COLUMNS) data[c] = sorted.map((r) => (renamed[c] ? renamed[c](r) : (r as unknown as Record<string, unknown>)[c] ?? null));
  return new dfd.DataFrame(data);
}

/** Rows from `summarize`/`summarizeWith`, `pairedDifference` or `stepSummary` (or any flat rows) as a DataFrame. */
export function summaryTable(rows: readonly SummaryRow[] | readonly PairedRow[] | readonly StepSummaryRow[] | ReadonlyArray<Record<string, unknown>>): dfd.DataFrame {
  if (rows.length === 0) throw new Error("summaryTable: no rows to show (no records, or every value was null)");
  const objects: ReadonlyArray<object> = rows;
  const data: Record<string, unknown[]> = {};
  for (const c of Object.keys(objects[0])) data[c] = objects.map((r) => (r as Record<string, unknown>)[c]);
  return new dfd.DataFrame(data);
}

export interface CaptionedTable {
  table: dfd.DataFrame;
  caption: string;
}

/** The label of a backbone's tables, the data named when synthetic, and what its selection left out. */
function heading(result: ExperimentResult, selection: Selection, backbone: Backbone): { label: string; excluded: string } {
  const excluded = exclusionNote(selection.tallies, conditionOf({ backbone, target_positive_rate: result.config.data.targetPositiveRate ?? undefined }));
  return { label: `${BACKBONE_LABEL[backbone]}${result.dataset === "synthetic" ? " (SYNTHETIC data)" : ""}`, excluded: excluded === "" ? "" : ` ${excluded}` };
}

/** Per backbone of the result: mean and 95% CI per arm and epoch of each metric, then the paired differences. */
export function summaryTables(result: ExperimentResult, metrics: readonly EpochMetric[]): CaptionedTable[] {
  const out: CaptionedTable[] = [];
  const selection = selectResult(result);
  for (const backbone of result.config.backbones) {
    const records = selection.records.filter((r) => r.backbone === backbone);
    const { label, excluded } = heading(result, selection, backbone);
    for (const metric of metrics) {
      const rows = summarize(records, metric);
      if (rows.length > 0) out.push({ table: summaryTable(rows), caption: `${label}: ${metric} per arm and epoch, mean and ${intervalText([[metric, METRIC_SCALE[metric]]])}.${excluded}` });
    }
    for (const metric of metrics) {
      const rows = pairedDifference(records, metric);
      if (rows.length > 0) out.push({ table: summaryTable(rows), caption: `${label}: ${metric}, positive rate - vanilla (paired by trial), mean and ${intervalText([["the difference", "natural"]], "paired trials")}${differenceBound(metric) === null ? "" : ", cut to [-1, 1]"}.${excluded}` });
    }
  }
  return out;
}

/** What the hockey-stick numbers are, for captions and the notebooks. */
export function catchUpDefinition(trainBatch: number): string {
  const tolerance = `${Math.round(ANALYSIS.catchUpTolerance * 100)}%`;
  return `Steps to catch up: optimizer steps before the vanilla arm's smoothed training loss comes within ${tolerance} of the positive-rate arm's and stays there ` +
    `for the rest of epoch 1 (both smoothed by the same exponential moving average, span ${ANALYSIS.catchUpEmaSpan} steps); images = steps x batch ${trainBatch}. ` +
    `Excess loss: the sum over epoch 1's steps of vanilla - positive rate raw step losses (nats x steps; x ${trainBatch} = extra nats summed over the images seen).`;
}

/** Per backbone: steps to catch up (and the images they stand for) and excess loss, mean and 95% CI over paired trials. */
export function catchUpTables(result: ExperimentResult): CaptionedTable[] {
  const selection = selectResult(result);
  const batch = result.config.trainBatch;
  return catchUpSummary(catchUpPerTrial(selection.steps)).map((row) => {
    const { label, excluded } = heading(result, selection, row.backbone);
    const s = row.steps_to_catch_up;
    const table = summaryTable([{
      backbone: row.backbone, pairs: row.pairs, caught_up: row.caught_up,
      steps_to_catch_up: s?.mean ?? null, steps_ci_low: s?.ci_low ?? null, steps_ci_high: s?.ci_high ?? null,
      images_to_catch_up: s ? s.mean * batch : null, images_ci_low: s?.ci_low != null ? s.ci_low * batch : null, images_ci_high: s?.ci_high != null ? s.ci_high * batch : null,
      excess_loss: row.excess_loss.mean, excess_ci_low: row.excess_loss.ci_low, excess_ci_high: row.excess_loss.ci_high,
    }]);
    const caught = `${row.caught_up} of ${row.pairs} pair${row.pairs === 1 ? "" : "s"} caught up within epoch 1 (steps averaged over those)`;
    return { table, caption: `${label}: the hockey stick, measured. ${catchUpDefinition(batch)} ${caught}; ${intervalText([["both", "natural"]], "paired trials")}.${excluded}` };
  });
}

/** One row per backbone and arm of `logitSpreadRows`: before any step, means over trials. */
export interface LogitSpreadRow {
  backbone: Backbone;
  arm: Arm;
  n: number;
  bias: number;
  /** The test logits in the evaluation mode, and the test BCE they give (epoch 0). */
  test_logit_mean: number | null;
  test_logit_sd: number | null;
  test_bce_epoch0: number;
  /** The first training batch's logits in train mode, its positive rate, and the BCE of a constant prediction at its mean logit. */
  first_batch_logit_mean: number | null;
  first_batch_logit_sd: number | null;
  first_batch_positive_rate: number | null;
  first_batch_bce_at_mean_logit: number | null;
  /** The first step's training loss: the BCE of those logits. */
  first_step_loss: number | null;
}

/**
 * Per backbone and arm, before any step: the bias, the spread of the test logits in the evaluation
 * mode, the spread of the first training batch's logits in train mode and that batch's positive
 * rate, the loss a constant prediction at the batch's mean logit would have on it, and the first
 * step's training loss. The gap between the last two is what the spread costs.
 */
export function logitSpreadRows(result: ExperimentResult): LogitSpreadRow[] {
  const selection = selectResult(result);
  const start = selection.records.filter((r) => r.epoch === 0);
  const firstSteps = stepSummary(selection.steps.filter((s) => s.epoch === 1 && s.step === 1));
  const constantBce = (r: EpochRecord): number | null => (r.first_batch_positive_rate == null || r.first_batch_logit_mean == null ? null
    : crossEntropyNats(r.first_batch_positive_rate, sigmoid(r.first_batch_logit_mean)));
  return summarize(start, "loss").map((row) => {
    const mine = start.filter((r) => r.backbone === row.backbone && r.arm === row.arm);
    const mean = (metric: EpochMetric): number | null => summarize(mine, metric)[0]?.mean ?? null;
    return {
      backbone: row.backbone, arm: row.arm, n: row.n, bias: mean("output_bias_value") as number,
      test_logit_mean: mean("logit_mean"), test_logit_sd: mean("logit_sd"), test_bce_epoch0: row.mean,
      first_batch_logit_mean: mean("first_batch_logit_mean"), first_batch_logit_sd: mean("first_batch_logit_sd"),
      first_batch_positive_rate: mean("first_batch_positive_rate"), first_batch_bce_at_mean_logit: summarizeWith(mine, "bce", constantBce, "log")[0]?.mean ?? null,
      first_step_loss: firstSteps.find((s) => s.backbone === row.backbone && s.arm === row.arm)?.mean ?? null,
    };
  });
}

/** `logitSpreadRows` per backbone, captioned. */
export function logitSpreadTables(result: ExperimentResult): CaptionedTable[] {
  const selection = selectResult(result);
  const rows = logitSpreadRows(result);
  return result.config.backbones.filter((b) => rows.some((r) => r.backbone === b)).map((backbone) => {
    const { label, excluded } = heading(result, selection, backbone);
    const p = result.positiveRate;
    return { table: summaryTable(rows.filter((r) => r.backbone === backbone) as unknown as Array<Record<string, unknown>>),
      caption: `${label}, before any step (means over trials): the test logits in ${result.config.evalMode === "train" ? "train" : "eval"} mode and the test BCE; ` +
        "the first training batch's logits in train mode (batch-statistics BatchNorm, the first step's dropout masks), its positive rate, the BCE of a constant " +
        `prediction at its mean logit, and the first step's loss (the BCE of those logits)${p === null ? "" : `; H(p) = ${entropyNats(p).toFixed(4)} for p = ${p.toFixed(4)}`}.${excluded}` };
  });
}

/** Per backbone, arm and epoch (means over trials): test BCE and ROC-AUC in eval mode beside train mode (evalMode "both"). */
export function evaluationModeTables(result: ExperimentResult): CaptionedTable[] {
  const selection = selectResult(result);
  const out: CaptionedTable[] = [];
  for (const backbone of result.config.backbones) {
    const records = selection.records.filter((r) => r.backbone === backbone && r.loss_train_mode != null);
    if (records.length === 0) continue;
    const cell = (metric: EpochMetric) => new Map(summarize(records, metric).map((r) => [`${r.arm} ${r.epoch}`, r.mean]));
    const [loss, auc, lossTrain, aucTrain] = (["loss", "roc_auc", "loss_train_mode", "roc_auc_train_mode"] as const).map(cell);
    const keys = summarize(records, "loss");
    const table = summaryTable(keys.map((k) => {
      const key = `${k.arm} ${k.epoch}`;
      return { type: k.arm, n_epochs: k.epoch, n: k.n, loss: loss.get(key) ?? null, roc_auc: auc.get(key) ?? null, loss_train_mode: lossTrain.get(key) ?? null, roc_auc_train_mode: aucTrain.get(key) ?? null };
    }));
    const { label, excluded } = heading(result, selection, backbone);
    out.push({ table, caption: `${label}: test BCE (loss) and ROC-AUC in eval mode (running BatchNorm statistics), and in train mode (batch statistics and dropout, ` +
      `as the reference evaluated) after the same training; means over trials.${excluded}` });
  }
  return out;
}
