// danfojs tables for display: every epoch record with the reference's column names, and rows of
// the statistics as a DataFrame.
import * as dfd from "danfojs-node";
import type { EpochMetric, EpochRecord } from "../records";
import type { ExperimentResult } from "../grid";
import { BACKBONE_LABEL } from "../../config";
import { checkUnique, compareKeys, pairedDifference, PairedRow, StepSummaryRow, summarize, SummaryRow } from "./grouping";

/** Column order of `resultsTable`: the reference's CSV columns first, then what this project adds. */
export const RESULTS_COLUMNS = [
  "loss", "roc_auc", "type", "n_epochs", "output_bias_value", "trial_idx",
  "pretrained", "seed", "dataset", "backend", "train_loss", "wall_s", "images_per_s",
] as const;

/**
 * All epoch records as one DataFrame with the reference's column names (`type` is the arm,
 * `n_epochs` the epoch, `trial_idx` the trial) plus `pretrained` (ImageNet backbone) and run
 * details. Rows sorted by backbone, arm, trial, epoch; nulls stay null.
 */
export function resultsTable(records: readonly EpochRecord[]): dfd.DataFrame {
  checkUnique(records, "resultsTable");
  const sorted = [...records].sort((a, b) => compareKeys([a.backbone, a.arm, a.trial, a.epoch], [b.backbone, b.arm, b.trial, b.epoch]));
  if (sorted.length === 0) return new dfd.DataFrame([], { columns: [...RESULTS_COLUMNS] });
  const column = <T>(f: (r: EpochRecord) => T): T[] => sorted.map(f);
  const data: Record<(typeof RESULTS_COLUMNS)[number], unknown[]> = {
    loss: column((r) => r.loss),
    roc_auc: column((r) => r.roc_auc),
    type: column((r) => r.arm),
    n_epochs: column((r) => r.epoch),
    output_bias_value: column((r) => r.output_bias_value),
    trial_idx: column((r) => r.trial),
    pretrained: column((r) => r.backbone === "imagenet"),
    seed: column((r) => r.seed),
    dataset: column((r) => r.dataset),
    backend: column((r) => r.backend),
    train_loss: column((r) => r.train_loss),
    wall_s: column((r) => r.wall_s),
    images_per_s: column((r) => r.images_per_s),
  };
  return new dfd.DataFrame(data);
}

/** Rows from `summarize`/`summarizeWith`, `pairedDifference` or `stepSummary` as a DataFrame. */
export function summaryTable(rows: readonly SummaryRow[] | readonly PairedRow[] | readonly StepSummaryRow[]): dfd.DataFrame {
  if (rows.length === 0) throw new Error("summaryTable: no rows to show (no records, or every value was null)");
  const objects: ReadonlyArray<object> = rows;
  const data: Record<string, unknown[]> = {};
  for (const c of Object.keys(objects[0])) data[c] = objects.map((r) => (r as Record<string, unknown>)[c]);
  return new dfd.DataFrame(data);
}

/** Per backbone of the result: mean and 95% CI per arm and epoch of each metric, then the paired differences. */
export function summaryTables(result: ExperimentResult, metrics: readonly EpochMetric[]): Array<{ table: dfd.DataFrame; caption: string }> {
  const out: Array<{ table: dfd.DataFrame; caption: string }> = [];
  for (const backbone of result.config.backbones) {
    const records = result.records.filter((r) => r.backbone === backbone);
    const label = `${BACKBONE_LABEL[backbone]}${result.dataset === "synthetic" ? " (SYNTHETIC data)" : ""}`;
    for (const metric of metrics) {
      const rows = summarize(records, metric);
      if (rows.length > 0) out.push({ table: summaryTable(rows), caption: `${label}: ${metric} per arm and epoch, mean and 95% CI over trials` });
    }
    for (const metric of metrics) {
      const rows = pairedDifference(records, metric);
      if (rows.length > 0) out.push({ table: summaryTable(rows), caption: `${label}: ${metric}, positive rate - vanilla (paired by trial), mean and 95% CI` });
    }
  }
  return out;
}
