// The records the training loop emits and the results store keeps: the contract between the
// experiment (writer) and the statistics and figures (readers). Plain JSON-able objects.
import type { Arm, Backbone, DatasetKind } from "../config";
import type { EpochMetrics } from "../train/loop";

/** Metrics added after the first stores were written: absent (read as null) in older records. */
export type LaterMetric = "ece" | "mean_prob" | "test_positive_rate" | "logit_mean" | "logit_sd" |
  "first_batch_logit_mean" | "first_batch_logit_sd" | "first_batch_positive_rate" | "loss_train_mode" | "roc_auc_train_mode";

/** One evaluation of one unit, as the store keeps it: the loop's metrics plus who and where. */
export interface EpochRecord extends Omit<EpochMetrics, "num_tensors" | LaterMetric>, Partial<Pick<EpochMetrics, LaterMetric>> {
  backbone: Backbone;
  /** The imbalance sweep's target positive rate (config.data.targetPositiveRate); absent: the data's own rate. */
  target_positive_rate?: number;
  arm: Arm;
  trial: number;
  seed: number;
  dataset: DatasetKind;
  backend: string;
}

/** The training loss of one optimizer step. */
export interface StepRecord {
  backbone: Backbone;
  target_positive_rate?: number;
  arm: Arm;
  trial: number;
  epoch: number;
  /** 1-based within the epoch. */
  step: number;
  loss: number;
}

/** Epoch-record metrics that can be summarized across trials. */
export type EpochMetric = "loss" | "roc_auc" | "output_bias_value" | "train_loss" | LaterMetric;

/** A metric of a record, null where it was not measured (epoch 0's train loss, older records). */
export function metricOf(r: EpochRecord, metric: EpochMetric): number | null {
  return r[metric] ?? null;
}

/**
 * What units are compared within: everything that identifies a unit except its arm and trial, i.e.
 * the backbone and, in the imbalance sweep, the target positive rate (absent where the data keeps
 * its own rate, so that rows of other runs look as they did). Statistics group by it and rows
 * carry its fields.
 */
export interface Condition {
  backbone: Backbone;
  target_positive_rate?: number;
}

/** The condition of a record or unit. */
export function conditionOf(x: Condition): Condition {
  return x.target_positive_rate == null ? { backbone: x.backbone } : { backbone: x.backbone, target_positive_rate: x.target_positive_rate };
}

/** The condition's values in a fixed order: a grouping and sort key. */
export function conditionKey(x: Condition): Array<string | number> {
  return x.target_positive_rate == null ? [x.backbone] : [x.backbone, x.target_positive_rate];
}
